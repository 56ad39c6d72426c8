"""``/v1/markets`` and ``/v1/markets/{m}`` show one state, the same in both, and say so when
the hot path and its lifecycle disagree. Real parts: a hot path (quote loop on the
simulated venue, its control API, Redis sink), the Temporal dev server with the
TradingLifecycle workflow and the real hot-path activity, PostgreSQL and Redis.

The issue's case: after an emergency stop (which halts the hot path directly and only
signals the lifecycle) the lifecycle's last command answer still said "trading"; it is no
longer shown as the hot path's state. A hot path resumed behind the lifecycle's back is
reported as a disagreement; going through the lifecycle puts both back in agreement."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from temporalio.common import SearchAttributeKey
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.hotpath import HotpathActivities
from api.auth.roles import Role
from tests.api.conftest import Harness, make_harness, settings_for
from tests.integration.hotpath_stores import hot_path_with_stores
from tests.integration.test_control import command
from workflows.lifecycle import TradingLifecycle
from workflows.types import CONTROL_QUEUE, host_queue, lifecycle_id

TEMPORAL = str(Path(sys.executable).parent / "temporal")
MARKET = "SEI/USDC"
ATTRS = [SearchAttributeKey.for_keyword("Market"), SearchAttributeKey.for_keyword("TradingState")]
STATE_KEYS = ("state", "state_source", "intent", "consistent", "disagreement")


async def _views(h: Harness) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the market in the list, the market alone); their state fields must be equal. Two
    reads can straddle a change (the hot path's state record lands between them), so a
    difference is read again; views that keep differing fail."""
    for _ in range(10):
        lst = await h.http.get("/v1/markets", headers=h.auth(Role.VIEWER))
        one = await h.http.get("/v1/markets/SEI-USDC", headers=h.auth(Role.VIEWER))
        assert lst.status_code == 200 and one.status_code == 200, (lst.text, one.text)
        a, b = lst.json()[0], one.json()
        same = {k: a[k] for k in STATE_KEYS} == {k: b[k] for k in STATE_KEYS}
        if same and a["lifecycle"] == b["lifecycle"]:
            return a, b
        await asyncio.sleep(0.2)
    assert {k: a[k] for k in STATE_KEYS} == {k: b[k] for k in STATE_KEYS}
    assert a["lifecycle"] == b["lifecycle"]
    return a, b


async def _until_state(h: Harness, state: str, intent: str, timeout: float = 5.0) -> dict:
    end = asyncio.get_running_loop().time() + timeout
    while True:
        view, _ = await _views(h)
        if view["state"] == state and view["intent"] == intent:
            return view
        if asyncio.get_running_loop().time() > end:
            raise AssertionError(f"wanted {state}/{intent}, got {view}")
        await asyncio.sleep(0.1)


async def _post(h: Harness, path: str) -> dict[str, Any]:
    r = await h.http.post(path, json={"reason": "test"}, headers=h.auth(Role.TRADER))
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def test_one_state_and_disagreement_reported(
    jwt_env: None, pg_dsn: str, redis_url: str, tmp_path: Path
) -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=TEMPORAL,
        search_attributes=ATTRS,
        ui=False,
        dev_server_extra_args=["--log-level", "error"],
    )
    try:
        async with hot_path_with_stores(tmp_path, None, redis_url, initial="stopped") as hp:
            acts = HotpathActivities({MARKET: hp.url})
            addr = env.client.service_client.config.target_host
            s = settings_for(
                pg_dsn,
                redis_url,
                tmp_path,
                control={"temporal_address": addr, "hotpaths": {MARKET: hp.url}},
            )
            h = await make_harness(s)
            async with (
                Worker(env.client, task_queue=CONTROL_QUEUE, workflows=[TradingLifecycle]),
                Worker(env.client, task_queue=host_queue(MARKET), activities=[acts.command]),
            ):
                try:
                    # before the lifecycle exists: the hot path's state, intent unknown
                    view = await _until_state(h, "STOPPED", None)  # type: ignore[arg-type]
                    assert view["consistent"] is None and view["lifecycle"] is None

                    # started through the lifecycle: both say trading
                    await _post(h, "/v1/markets/SEI-USDC/start")
                    view = await _until_state(h, "TRADING", "TRADING")
                    assert view["consistent"] is True and view["disagreement"] is None
                    assert view["lifecycle"]["last_command"]["command"] == "start"
                    assert "hotpath" not in view["lifecycle"]

                    # what an emergency stop does: halt the hot path directly, then tell the
                    # lifecycle it is HALTED. The lifecycle's last answer used to keep saying
                    # trading (the "hot-path section"); the stop now supersedes it,
                    # and the view shows the hot path's own state, so the two agree.
                    st, _ = await command(hp.url, "estop-1", "halt", reason="drill")
                    assert st == 200
                    handle = env.client.get_workflow_handle(lifecycle_id(MARKET))
                    await handle.signal("halted_by_emergency_stop", "emergency stop: drill")
                    view = await _until_state(h, "HALTED", "HALTED")
                    assert view["consistent"] is True
                    last = view["lifecycle"]["last_command"]
                    assert last["state"] == "halted" and last["by"] == "emergency stop"
                    assert "last command" in last["note"]

                    # resumed behind the lifecycle's back: reported, with both values
                    st, _ = await command(hp.url, "direct-resume", "resume")
                    assert st == 200
                    view = await _until_state(h, "TRADING", "HALTED")
                    assert view["consistent"] is False
                    d = view["disagreement"]
                    assert d["hotpath"] == "TRADING" and d["lifecycle"] == "HALTED"
                    assert d["since"] and "resume" in d["why"]
                    await asyncio.sleep(0.3)
                    again, _ = await _views(h)
                    assert again["disagreement"]["since"] == d["since"]  # first seen, kept

                    # the fixed path: halt and resume through the lifecycle, both agree
                    await _post(h, "/v1/markets/SEI-USDC/halt")
                    view = await _until_state(h, "HALTED", "HALTED")
                    assert view["consistent"] is True and view["disagreement"] is None
                    out = await _post(h, "/v1/markets/SEI-USDC/resume")
                    assert out["state"] == "TRADING"
                    view = await _until_state(h, "TRADING", "TRADING")
                    assert view["consistent"] is True
                    assert await h.ctx.redis.get("views:disagree:SEI/USDC") is None
                finally:
                    await h.http.aclose()
                    await h.ctx.close()
    finally:
        await env.shutdown()
