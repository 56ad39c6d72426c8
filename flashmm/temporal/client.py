"""Connecting to Temporal: the one client every process uses (CLI, API, workers), with the
payload codec when keys are configured and the tracing interceptor when tracing is on. The
workflows' own starters are beside them (``workflows/starters.py``)."""

from __future__ import annotations

import dataclasses
import os

from temporalio.client import Client
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes

from flashmm import tracing
from flashmm.temporal.codec import EncryptionCodec

DEFAULT_ADDRESS = "127.0.0.1:7233"


def data_converter(*, strict: bool = False) -> DataConverter:
    """Encrypting converter when codec keys are configured; plain otherwise. With the codec,
    failure messages and stack traces are encoded too (they can hold addresses, balances).
    ``strict`` (workers): a plain payload is refused, not acted on."""
    if os.environ.get("FLASHMM_CODEC_KEYS"):
        return encrypting(EncryptionCodec.from_env(strict=strict))
    return DataConverter.default


def encrypting(codec: EncryptionCodec) -> DataConverter:
    return dataclasses.replace(
        DataConverter.default,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


async def connect(
    address: str | None = None, namespace: str = "default", *, strict: bool = False
) -> Client:
    """``strict``: for workers, which must not act on input sent without the codec key."""
    return await Client.connect(
        address or os.environ.get("FLASHMM_TEMPORAL_ADDRESS", DEFAULT_ADDRESS),
        namespace=namespace,
        data_converter=data_converter(strict=strict),
        interceptors=tracing.temporal_interceptors(),  # none while tracing is off
    )
