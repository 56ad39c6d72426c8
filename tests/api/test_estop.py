"""``POST /v1/emergency-stop`` with everything up, with Temporal down (the hot path is
halted anyway and the stop waits, recorded, for Temporal to come back) and with the hot
path down (the workflow still starts and cancels on the venue). Real parts: a hot path's
control server over a quote loop on the simulated venue, and the Temporal dev server."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from api.auth.roles import Role
from api.estop import PendingStops
from tests.api.conftest import Harness, closed_port, make_harness, settings_for
from tests.integration.test_control import hot_path, wait_for

TEMPORAL = str(Path(sys.executable).parent / "temporal")


async def _dev(port: int | None = None) -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=TEMPORAL,
        ui=False,
        port=port,
        dev_server_extra_args=["--log-level", "error"],
    )


async def _stop(h: Harness, role: Role = Role.TRADER) -> dict:
    r = await h.http.post(
        "/v1/emergency-stop",
        json={"markets": ["SEI-USDC"], "reason": "drill"},
        headers=h.auth(role),
    )
    assert r.status_code == 202, r.text
    return r.json()


async def test_everything_up(jwt_env: None, pg_dsn: str, redis_url: str, tmp_path: Path) -> None:
    env = await _dev()
    try:
        async with hot_path(tmp_path / "hp.json") as (control, venue, url):
            await wait_for(lambda: len(venue.core.open_orders()) >= 2)
            addr = env.client.service_client.config.target_host
            s = settings_for(
                pg_dsn,
                redis_url,
                tmp_path,
                control={"temporal_address": addr, "hotpaths": {"SEI/USDC": url}},
            )
            h = await make_harness(s)
            try:
                t0 = asyncio.get_running_loop().time()
                body = await _stop(h)
                took = asyncio.get_running_loop().time() - t0
                assert body["markets"]["SEI/USDC"] == {"halted": True, "detail": "halted"}
                assert control.state.state == "halted"
                await wait_for(lambda: not venue.core.open_orders(), 2.0)
                wf = body["workflow"]
                assert wf["started"] and wf["workflow_id"] == "estop/SEI/USDC"
                desc = await env.client.get_workflow_handle(wf["workflow_id"]).describe()
                assert desc.status == WorkflowExecutionStatus.RUNNING  # no worker here
                assert took < 2.0
                # a second stop joins the same run, and the workflow shows up in the API
                again = await _stop(h, Role.OPERATOR)
                assert again["workflow"]["workflow_id"] == wf["workflow_id"]
                got = await h.http.get(
                    f"/v1/workflows/{wf['workflow_id']}", headers=h.auth(Role.VIEWER)
                )
                assert got.status_code == 200 and got.json()["status"] == "RUNNING"
                assert got.json()["workflow_type"] == "EmergencyStop"
            finally:
                await h.http.aclose()
                await h.ctx.close()
    finally:
        await env.shutdown()


async def test_temporal_down_still_halts_and_the_stop_waits_for_it(
    jwt_env: None, pg_dsn: str, redis_url: str, tmp_path: Path
) -> None:
    port = closed_port()
    async with hot_path(tmp_path / "hp.json") as (control, venue, url):
        await wait_for(lambda: len(venue.core.open_orders()) >= 2)
        s = settings_for(
            pg_dsn,
            redis_url,
            tmp_path,
            control={"temporal_address": f"127.0.0.1:{port}", "hotpaths": {"SEI/USDC": url}},
        )
        h = await make_harness(s)
        try:
            body = await _stop(h)
            assert body["markets"]["SEI/USDC"]["halted"] is True
            assert control.state.state == "halted"
            wf = body["workflow"]
            assert wf["started"] is False and wf["pending"] == "postgres"
            assert "Temporal" in wf["detail"]
            pending = await h.ctx.pool.fetch("SELECT * FROM pending_estops")
            assert len(pending) == 1 and pending[0]["id"] == body["stop_id"]
            assert pending[0]["actor"] == "user:trader" and pending[0]["started_at"] is None
            # Temporal comes back (on the configured address): the stop gets its workflow
            env = await _dev(port)
            try:
                started = await PendingStops(h.ctx).start_all()
                assert started == ["estop/SEI/USDC"]
                desc = await env.client.get_workflow_handle(started[0]).describe()
                assert desc.status == WorkflowExecutionStatus.RUNNING
                row = await h.ctx.pool.fetchrow("SELECT * FROM pending_estops")
                assert row["workflow_id"] == "estop/SEI/USDC" and row["started_at"] is not None
                assert await PendingStops(h.ctx).start_all() == []  # started once
            finally:
                await env.shutdown()
        finally:
            await h.http.aclose()
            await h.ctx.close()


async def test_hot_path_down_still_starts_the_workflow(
    jwt_env: None, pg_dsn: str, redis_url: str, tmp_path: Path
) -> None:
    env = await _dev()
    try:
        addr = env.client.service_client.config.target_host
        s = settings_for(
            pg_dsn,
            redis_url,
            tmp_path,
            control={
                "temporal_address": addr,
                "hotpaths": {"SEI/USDC": f"http://127.0.0.1:{closed_port()}"},
            },
        )
        h = await make_harness(s)
        try:
            r = await h.http.post(
                "/v1/emergency-stop",
                json={"all": True, "reason": "drill"},
                headers=h.auth(Role.ADMIN),
            )
            assert r.status_code == 202
            body = r.json()
            assert body["markets"]["SEI/USDC"]["halted"] is False
            assert "unreachable" in body["markets"]["SEI/USDC"]["detail"]
            assert body["markets"]["ATOM/USDC"]["detail"].startswith("no hot path endpoint")
            assert body["workflow"]["started"] is True
            wid = body["workflow"]["workflow_id"]
            assert wid == "estop/ATOM/USDC+SEI/USDC"
            desc = await env.client.get_workflow_handle(wid).describe()
            assert desc.status == WorkflowExecutionStatus.RUNNING
            rows = await h.audit_rows()
            assert rows[-1]["action"] == "estop" and rows[-1]["actor"] == "user:admin"
            assert wid in rows[-1]["outcome"]
        finally:
            await h.http.aclose()
            await h.ctx.close()
    finally:
        await env.shutdown()


async def test_both_down_records_the_stop_in_a_spool_when_postgres_is_down_too(
    harness: Harness, tmp_path: Path
) -> None:
    """The last line of defence: the stop is written to a local file and moved to
    PostgreSQL (then started) later."""
    import asyncpg

    from workflows.types import EmergencyStopInput

    h = harness
    real = h.ctx.pool
    h.ctx.pool = await asyncpg.create_pool(
        f"postgresql://flashmm@127.0.0.1:{closed_port()}/x", min_size=0, max_size=1
    )
    stops = PendingStops(h.ctx)
    where = await stops.add("rid-1", EmergencyStopInput(["SEI/USDC"], "drill", "user:x"))
    assert where == "spool" and stops.spool.exists()
    await h.ctx.pool.close()
    h.ctx.pool = real
    try:
        await stops.start_all()  # Temporal still down: starts nothing, keeps the spool
    except Exception as e:
        assert "Temporal" in str(e)
    assert stops.spool.exists()  # it leaves the spool only once its start is acknowledged
    kept = [json.loads(ln) for ln in stops.spool.read_text().splitlines()]
    assert [(d["id"], d["reason"]) for d in kept] == [("rid-1", "drill")]
    assert await real.fetch("SELECT id FROM pending_estops") == []


async def test_a_spooled_stop_with_a_nul_reason_waits_for_temporal_then_starts(
    harness: Harness, tmp_path: Path
) -> None:
    """Found: a pending stop with NUL in its reason was deleted from the spool on the first
    pass (PostgreSQL refused it) and never started."""
    import asyncpg

    from workflows.types import EmergencyStopInput

    h = harness
    real = h.ctx.pool
    h.ctx.pool = await asyncpg.create_pool(
        f"postgresql://flashmm@127.0.0.1:{closed_port()}/x", min_size=0, max_size=1
    )
    stops = PendingStops(h.ctx)
    await stops.add("rid-nul", EmergencyStopInput(["SEI/USDC"], "bad\x00reason", "user:x"))
    await h.ctx.pool.close()
    h.ctx.pool = real
    for _ in range(2):  # Temporal down: however often it is tried, the stop stays
        try:
            await stops.start_all()
        except Exception as e:
            assert "Temporal" in str(e)
        assert "rid-nul" in stops.spool.read_text()
    port = int(h.ctx.settings.control.temporal_address.rsplit(":", 1)[1])
    env = await _dev(port)
    try:
        assert await stops.start_all() == ["estop/SEI/USDC"]
        assert not stops.spool.exists()
        desc = await env.client.get_workflow_handle("estop/SEI/USDC").describe()
        assert desc.status == WorkflowExecutionStatus.RUNNING
        row = await real.fetchrow("SELECT * FROM pending_estops WHERE id = 'rid-nul'")
        assert row["reason"] == "bad\\u0000reason" and row["started_at"] is not None
    finally:
        await env.shutdown()
