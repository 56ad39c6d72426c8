"""The chain as activities see it: the Sei chain client of the configured venue, its
unusable answers turned into a retryable ``VenueAnswerError`` (an ``ApplicationError``
naming what was asked, never a Python ``KeyError`` a retry policy could mistake for "this
key cannot be used")."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from temporalio.exceptions import ApplicationError

from flashmm.config import Settings
from flashmm.venue.sei.chain import ChainAnswerError, SeiChain

VENUE_ANSWER = "VenueAnswerError"  # the venue answered something we cannot use (retryable)


def venue_error(e: ChainAnswerError) -> ApplicationError:
    return ApplicationError(str(e), type=VENUE_ANSWER)


@contextlib.asynccontextmanager
async def open_chain(settings: Settings) -> AsyncIterator[SeiChain]:
    """A chain client for the body of a ``with``; closed after it."""
    chain = SeiChain.connect(tuple(settings.venue.rest_urls))
    try:
        yield chain
    except ChainAnswerError as e:
        raise venue_error(e) from None
    finally:
        await chain.close()
