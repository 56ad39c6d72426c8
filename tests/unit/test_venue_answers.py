"""The control plane reads venue answers explicitly: an error page or an odd body is a
retryable ``VenueAnswerError`` naming what was asked, never a Python ``KeyError`` that a
retry policy would mistake for "this key cannot be used"."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.venue import VENUE_ANSWER, VenueActivities, account_numbers, broadcast_code
from flashmm.config import load_settings
from workflows.types import VenueRequest


def test_broadcast_answers_are_read_explicitly() -> None:
    assert broadcast_code(200, {"tx_response": {"code": 0, "raw_log": ""}}) == (0, "")
    assert broadcast_code(200, {"tx_response": {"code": "5", "raw_log": "no"}}) == (5, "no")
    for status, body in [
        (500, {"tx_response": {"code": 0}}),  # right shape, wrong status
        (200, {"code": 13, "message": "out of gas"}),  # a gRPC-gateway error body
        (200, "<html>bad gateway</html>"),
        (200, None),
        (200, {"tx_response": {"code": "x"}}),
    ]:
        with pytest.raises(ApplicationError) as e:
            broadcast_code(status, body)
        assert e.value.type == VENUE_ANSWER and not e.value.non_retryable
        assert f"venue answered {status}" in str(e.value)


def test_account_lookups_are_read_explicitly() -> None:
    ok = {"account": {"account_number": "7", "sequence": "3"}}
    assert account_numbers(200, ok) == (7, 3)
    for status, body in [(404, ok), (200, {"account": {}}), (200, [])]:
        with pytest.raises(ApplicationError) as e:
            account_numbers(status, body)
        assert e.value.type == VENUE_ANSWER


@pytest_asyncio.fixture
async def broken_venue() -> AsyncIterator[str]:
    """A venue endpoint on loopback that answers every request with a 502 error body."""

    async def bad(request: web.Request) -> web.Response:
        return web.json_response({"error": "upstream unavailable"}, status=502)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", bad)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("call", ["cancel_all", "balances", "open_orders"])
async def test_an_error_answer_fails_the_activity_with_a_retryable_venue_error(
    broken_venue: str, call: str
) -> None:
    base = load_settings(None)
    settings = base.model_copy(
        update={"venue": base.venue.model_copy(update={"rest_urls": [broken_venue]})}
    )
    act = VenueActivities(settings, block_wait_s=0)
    with pytest.raises(ApplicationError) as e:
        await ActivityEnvironment().run(getattr(act, call), VenueRequest("SEI/USDC"))
    assert e.value.type == VENUE_ANSWER and not e.value.non_retryable
    assert "venue answered 502" in str(e.value)
