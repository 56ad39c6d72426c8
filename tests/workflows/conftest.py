"""Temporal test environments from the pinned binaries (no download at run time)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.common import SearchAttributeKey
from temporalio.testing import WorkflowEnvironment

BIN = Path(sys.executable).parent
SEARCH_ATTRIBUTES = [
    SearchAttributeKey.for_keyword("Market"),
    SearchAttributeKey.for_keyword("TradingState"),
]


def _bin(name: str) -> str:
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found next to {sys.executable}: pip install the pins")
    return found


async def _time() -> WorkflowEnvironment:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_bin("temporal-test-server")
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                k.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for k in SEARCH_ATTRIBUTES
            },
        )
    )
    return env


async def _dev() -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=_bin("temporal"),
        search_attributes=SEARCH_ATTRIBUTES,
        ui=False,
        dev_server_extra_args=["--log-level", "error"],
    )


@pytest_asyncio.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await _time()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await _dev()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture(params=["time-skipping", "dev-server"])
async def any_env(request: pytest.FixtureRequest) -> AsyncIterator[WorkflowEnvironment]:
    """The same test against the time-skipping test server and a real dev server."""
    env = await (_time() if request.param == "time-skipping" else _dev())
    try:
        yield env
    finally:
        await env.shutdown()
