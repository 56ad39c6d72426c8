"""Search attributes against a real dev server started without them (as a fresh deployment's
namespace is): the check names what is missing and how to fix it, a control worker refuses to
start, ``ensure`` / ``flashmm temporal setup`` registers them idempotently, and then both pass.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from flashmm.temporal import search_attributes as sa
from tests.workflows.conftest import _bin


@pytest_asyncio.fixture
async def bare_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server whose namespace has no custom search attributes."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=_bin("temporal"),
        ui=False,
        dev_server_extra_args=["--log-level", "error"],
    )
    try:
        yield env
    finally:
        await env.shutdown()


async def _cli(env: WorkflowEnvironment, *args: str) -> tuple[int, str, str]:
    """``flashmm ARGS`` as a deployment runs it, pointed at the dev server."""
    target = env.client.service_client.config.target_host
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.main",
        *args,
        env={
            **os.environ,
            "FLASHMM_CONTROL__TEMPORAL_ADDRESS": target,
            "FLASHMM_CONTROL__NAMESPACE": env.client.namespace,
            "FLASHMM_CONTROL__METRICS_PORT": "0",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_check_names_the_missing_attributes_and_the_fix(
    bare_env: WorkflowEnvironment,
) -> None:
    client = bare_env.client
    gone = await sa.missing(client)
    assert set(gone) == {"Market", "TradingState"}
    with pytest.raises(sa.SearchAttributesMissingError) as info:
        await sa.check(client)
    text = str(info.value)
    assert "Market" in text and "TradingState" in text and "BadSearchAttributes" in text
    assert "flashmm temporal setup" in text
    assert (
        "temporal operator search-attribute create --namespace default "
        "--name Market --type Keyword --name TradingState --type Keyword"
    ) in text


async def test_ensure_is_idempotent_and_makes_the_check_pass(
    bare_env: WorkflowEnvironment,
) -> None:
    client = bare_env.client
    assert await sa.ensure(client) == ["Market", "TradingState"]
    assert await sa.missing(client) == {}
    await sa.check(client)
    assert await sa.ensure(client) == []  # the second run changes nothing
    have = await sa.registered(client)
    assert have["Market"] == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    assert have["TradingState"] == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD


async def test_ensure_adds_only_what_is_missing(bare_env: WorkflowEnvironment) -> None:
    client = bare_env.client
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={"Market": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD},
        )
    )
    assert set(await sa.missing(client)) == {"TradingState"}
    assert await sa.ensure(client) == ["TradingState"]
    await sa.check(client)


async def test_a_wrong_type_is_reported_not_papered_over(bare_env: WorkflowEnvironment) -> None:
    client = bare_env.client
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={"Market": IndexedValueType.INDEXED_VALUE_TYPE_TEXT},
        )
    )
    assert await sa.missing(client) == {
        "Market": "is Text, needs Keyword",
        "TradingState": "missing, needs Keyword",
    }
    with pytest.raises(sa.SearchAttributesMissingError, match="Market \\(is Text, needs Keyword"):
        await sa.ensure(client)


async def test_worker_refuses_to_start_until_setup_ran(bare_env: WorkflowEnvironment) -> None:
    code, _, err = await _cli(bare_env, "worker", "control")
    assert code == 2, err
    assert "Market" in err and "TradingState" in err and "flashmm temporal setup" in err

    code, _, err = await _cli(bare_env, "temporal", "check")
    assert code == 1 and "TradingState" in err, err

    code, out, err = await _cli(bare_env, "temporal", "setup")
    assert code == 0, err
    assert '"added": ["Market", "TradingState"]' in out
    code, out, err = await _cli(bare_env, "temporal", "setup")
    assert code == 0 and '"added": []' in out, err
    code, _, err = await _cli(bare_env, "temporal", "check")
    assert code == 0, err


def test_the_workflows_upsert_exactly_the_registered_keys() -> None:
    from cli.demo_control import SEARCH_ATTRIBUTES as DEMO
    from workflows import lifecycle

    assert (lifecycle.MARKET, lifecycle.STATE) == sa.KEYS
    assert DEMO == ("Market=Keyword", "TradingState=Keyword")
