"""EmergencyStop with every real part: a localnet process, a hot-path process with its
control API, a Temporal dev server, the real activities and PostgreSQL — including a worker
killed with SIGKILL in the middle of the stop and started again."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from flashmm.config import Settings, load_settings
from flashmm.temporal.search_attributes import KEYS
from flashmm.venue.sei.wallet import Wallet
from workers.run import control_worker, host_workers
from workflows.starters import start_emergency_stop
from workflows.types import EmergencyStopInput

MARKET = "SEI/USDC"


@dataclass
class Platform:
    settings: Settings
    env: dict[str, str]
    control_url: str
    token: str
    orders_url: str
    temporal: WorkflowEnvironment
    pg: str

    async def open_orders(self) -> int:
        async with aiohttp.ClientSession() as s, s.get(self.orders_url) as r:
            return len((await r.json())["orders"])

    async def status(self) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as s,
            s.get(
                f"{self.control_url}/v1/status", headers={"Authorization": f"Bearer {self.token}"}
            ) as r,
        ):
            data: dict[str, Any] = await r.json()
            return data


async def _spawn(args: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )


@asynccontextmanager
async def platform(tmp: Path, pg_dsn: str) -> AsyncIterator[Platform]:
    token = secrets.token_urlsafe(24)
    node = await _spawn(["localnet", "--rest-port", "0", "--rpc-port", "0"], dict(os.environ))
    procs = [node]
    tenv = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        search_attributes=KEYS,  # `flashmm worker all` refuses to start without them
        ui=False,
    )
    try:
        assert node.stdout is not None
        ready = json.loads(await asyncio.wait_for(node.stdout.readline(), 30))
        env = {
            **os.environ,
            "FLASHMM_VENUE__REST_URLS": json.dumps([ready["rest"]]),
            "FLASHMM_VENUE__WS_URLS": json.dumps([ready["rpc"]]),
            "FLASHMM_CONTROL_TOKEN": token,
            "FLASHMM_HOTPATH__STATE_DIR": str(tmp),
            "FLASHMM_STORES__ENABLED": "false",
            "FLASHMM_STORES__POSTGRES_DSN": pg_dsn,
            "FLASHMM_LOG_LEVEL": "WARNING",
            # a test may freeze requoting for an hour: widen that one run-time bound
            "FLASHMM_HOTPATH__BOUNDS": json.dumps(
                {"quoting": {"requote_min_interval_s": [0.005, 3600]}}
            ),
        }
        hp = await _spawn(["hotpath", "--market", MARKET, "--json"], env)
        procs.append(hp)
        assert hp.stdout is not None
        control = json.loads(await asyncio.wait_for(hp.stdout.readline(), 60))
        url = f"http://127.0.0.1:{control['port']}"
        s = load_settings(
            stores={"enabled": False, "postgres_dsn": pg_dsn},
            venue={"rest_urls": [ready["rest"]], "ws_urls": [ready["rpc"]]},
            control={"hotpaths": {MARKET: url}},
        )
        address = Wallet.from_mnemonic(s.venue.mnemonic("dev", MARKET)).address
        orders = (
            f"{ready['rest']}/sei-protocol/seichain/dex/get_orders/"
            f"{s.market(MARKET).contract_address()}/{address}"
        )
        env["FLASHMM_CONTROL__HOTPATHS"] = json.dumps({MARKET: url})
        env["FLASHMM_CONTROL__TEMPORAL_ADDRESS"] = tenv.client.service_client.config.target_host
        yield Platform(s, env, url, token, orders, tenv, pg_dsn)
    finally:
        for p in procs:
            if p.returncode is None:
                p.terminate()
                await p.wait()
        await tenv.shutdown()


async def _until(pred: Any, timeout: float) -> None:
    end = asyncio.get_running_loop().time() + timeout
    while not await pred():
        if asyncio.get_running_loop().time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def _halted_in_db(dsn: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        return bool(await conn.fetchval("SELECT halted FROM risk_state WHERE market = $1", MARKET))
    finally:
        await conn.close()


async def _audit_rows(dsn: str, request_id: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM audit_log WHERE request_id = $1", request_id)
        )
    finally:
        await conn.close()


async def test_emergency_stop_end_to_end(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with platform(tmp_path, pg_dsn) as p:
        monkeypatch.setenv("FLASHMM_CONTROL_TOKEN", p.token)  # the in-process host worker
        workers = [
            control_worker(p.temporal.client, p.settings),
            *host_workers(p.temporal.client, p.settings),
        ]
        tasks = [asyncio.create_task(w.run()) for w in workers]
        try:
            await _until(lambda: _ge(p.open_orders(), 2), 30)
            h = await start_emergency_stop(
                p.temporal.client, EmergencyStopInput([MARKET], "e2e test", "tester")
            )
            res = await asyncio.wait_for(h.result(), 60)
        finally:
            for w in workers:
                await w.shutdown()
            await asyncio.gather(*tasks, return_exceptions=True)
        r = res.markets[0]
        assert r.hotpath_halted and r.verified_open == 0
        assert await p.open_orders() == 0
        await asyncio.sleep(0.6)  # a block later: still nothing (the hot path is halted)
        assert await p.open_orders() == 0
        assert (await p.status())["desired"] == "halted"
        assert await _halted_in_db(p.pg)
        assert await _audit_rows(p.pg, f"{h.id}/{h.result_run_id}/0") == 1


async def _ge(coro: Any, n: int) -> bool:
    return bool(await coro >= n)


async def test_worker_killed_mid_stop_finishes_once(tmp_path: Path, pg_dsn: str) -> None:
    async with platform(tmp_path, pg_dsn) as p:
        await _until(lambda: _ge(p.open_orders(), 2), 30)
        # the hot path must not cancel by itself: the workflow alone has to get them out
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                f"{p.control_url}/v1/commands",
                headers={"Authorization": f"Bearer {p.token}"},
                json={
                    "command_id": "freeze",
                    "command": "set_params",
                    "args": {"quoting": {"requote_min_interval_s": 3600}},
                },
            ) as resp,
        ):
            assert resp.status == 200
        worker = await _spawn(["worker", "all"], p.env)
        assert worker.stdout is not None
        await asyncio.wait_for(worker.stdout.readline(), 60)  # {"event": "worker", ...}
        h = await start_emergency_stop(
            p.temporal.client, EmergencyStopInput([MARKET], "crash test", "tester")
        )

        # kill it as soon as the stop has begun (the halt went out, the cancel not verified)
        async def started() -> bool:
            return bool((await p.status())["desired"] == "halted")

        await _until(started, 30)
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
        restarted = await _spawn(["worker", "all"], p.env)
        try:
            res = await asyncio.wait_for(h.result(), 90)
        finally:
            restarted.terminate()
            await restarted.wait()
        assert res.markets[0].verified_open == 0
        assert await p.open_orders() == 0
        assert (
            await _audit_rows(p.pg, f"{h.id}/{h.result_run_id}/0") == 1
        )  # once, despite the crash
        assert await _halted_in_db(p.pg)


async def test_emergency_stop_flattens_within_the_loss_budget(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with platform(tmp_path, pg_dsn) as p:
        monkeypatch.setenv("FLASHMM_CONTROL_TOKEN", p.token)

        async def has_position() -> bool:
            return abs(int((await p.status())["position_lots"])) >= 50

        await _until(has_position, 60)
        workers = [
            control_worker(p.temporal.client, p.settings),
            *host_workers(p.temporal.client, p.settings),
        ]
        tasks = [asyncio.create_task(w.run()) for w in workers]
        try:
            h = await start_emergency_stop(
                p.temporal.client,
                EmergencyStopInput(
                    [MARKET], "flatten test", "tester", flatten=True, loss_budget_usdc=50.0
                ),
            )
            res = await asyncio.wait_for(h.result(), 90)
        finally:
            for w in workers:
                await w.shutdown()
            await asyncio.gather(*tasks, return_exceptions=True)
        r = res.markets[0]
        assert r.verified_open == 0 and await p.open_orders() == 0
        before = int(r.flattened["lots"])
        assert before >= 50
        await asyncio.sleep(1.0)  # the fills reach the (halted) hot path
        after = abs(int((await p.status())["position_lots"]))
        assert after < before  # worked off, never flipped past flat
        assert (
            after == 0
            or int((await p.status())["position_lots"])
            * (1 if r.flattened["side"] == "sell" else -1)
            > 0
        )
