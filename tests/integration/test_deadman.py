"""The dead-man's switch with every real part: a localnet process (400 ms blocks), hot-path
processes killed with SIGKILL while their orders rest on the chain, Redis heartbeats, the
per-host worker's watcher, the DeadmanSwitch workflow on a Temporal dev server, PostgreSQL.

1. A hot path killed and restarted at once (no watcher yet): the new one takes over the
   orphans before its first quote (cancels or keeps them as its own), so a clean stop soon
   after leaves no order at all; that clean stop is no incident for the watcher.
2. With the watcher running, a hot path is killed: every order of its account is cancelled
   (verified), the market is recorded halted, and a restarted hot path comes back halted
   with nothing to adopt and nothing placed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from flashmm.config import Settings, load_settings
from flashmm.venue.sei.wallet import Wallet
from workers.run import control_worker, host_workers
from workflows.deadman import DeadmanResult

MARKET = "SEI/USDC"


@dataclass
class HotPath:
    proc: asyncio.subprocess.Process
    control: dict[str, Any] = field(default_factory=dict)
    lines: list[dict[str, Any]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            with contextlib.suppress(ValueError):
                obj = json.loads(raw)
                if obj.get("event") == "control":
                    self.control = obj
                else:
                    self.lines.append(obj)

    async def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()


@dataclass
class Rig:
    env: dict[str, str]
    orders_url: str
    settings: Settings
    procs: list[asyncio.subprocess.Process]

    async def spawn(self) -> HotPath:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cli",
            "hotpath",
            "--market",
            MARKET,
            "--json",
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        self.procs.append(proc)
        hp = HotPath(proc)
        hp.reader = asyncio.create_task(hp.read())
        await _until(lambda: bool(hp.lines) or proc.returncode is not None, 60)
        assert proc.returncode is None, "hot path exited at start-up"
        return hp

    async def orders(self) -> list[str]:
        """Client ids of the account's orders resting on the chain."""
        async with aiohttp.ClientSession() as s, s.get(self.orders_url) as r:
            return [str(json.loads(o["data"])["cid"]) for o in (await r.json())["orders"]]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _until(pred: Any, timeout: float) -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


@contextlib.asynccontextmanager
async def rig(tmp: Path, pg_dsn: str, redis_url: str) -> AsyncIterator[Rig]:
    node = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "localnet",
        "--rest-port",
        "0",
        "--rpc-port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    procs = [node]
    try:
        assert node.stdout is not None
        ready = json.loads(await asyncio.wait_for(node.stdout.readline(), 30))
        url = f"http://127.0.0.1:{_port()}"
        env = {
            **os.environ,
            "FLASHMM_VENUE__REST_URLS": json.dumps([ready["rest"]]),
            "FLASHMM_VENUE__WS_URLS": json.dumps([ready["rpc"]]),
            "FLASHMM_CONTROL_TOKEN": os.environ["FLASHMM_CONTROL_TOKEN"],
            "FLASHMM_HOTPATH__CONTROL_PORT": url.rsplit(":", 1)[1],
            "FLASHMM_HOTPATH__STATE_DIR": str(tmp / "state"),
            "FLASHMM_HOTPATH__STATUS_INTERVAL_S": "0.2",
            "FLASHMM_STORES__POSTGRES_DSN": pg_dsn,
            "FLASHMM_STORES__REDIS_URL": redis_url,
            "FLASHMM_STORES__JOURNAL_DIR": str(tmp / "journal"),
            "FLASHMM_LOG_LEVEL": "WARNING",
        }
        s = load_settings(
            stores={"postgres_dsn": pg_dsn, "redis_url": redis_url},
            venue={"rest_urls": [ready["rest"]], "ws_urls": [ready["rpc"]]},
            control={"hotpaths": {MARKET: url}},
        )
        address = Wallet.from_mnemonic(s.venue.mnemonic("dev", MARKET)).address
        orders = (
            f"{ready['rest']}/sei-protocol/seichain/dex/get_orders/"
            f"{s.market(MARKET).contract_address()}/{address}"
        )
        yield Rig(env, orders, s, procs)
    finally:
        for p in procs:
            if p.returncode is None:
                p.terminate()
                await p.wait()


async def _halt_record(dsn: str) -> tuple[bool, str]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow("SELECT halted, reason FROM risk_state WHERE market = $1", MARKET)
    finally:
        await conn.close()
    return (bool(row["halted"]), str(row["reason"])) if row else (False, "")


async def _deadman_results(client: Client) -> list[DeadmanResult]:
    out = []
    async for wf in client.list_workflows('WorkflowType="DeadmanSwitch"'):
        handle = client.get_workflow_handle(wf.id, run_id=wf.run_id, result_type=DeadmanResult)
        out.append(await handle.result())
    return out


async def test_a_killed_hot_path_leaves_no_order_and_comes_back_halted(
    tmp_path: Path, pg_dsn: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASHMM_CONTROL_TOKEN", "deadman-test-token-0123456789")
    tenv = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        ui=False,
        dev_server_extra_args=["--log-level", "error"],
    )
    try:
        async with rig(tmp_path, pg_dsn, redis_url) as r:
            # 1. killed and restarted at once: the orphans go before the first quote
            for _ in range(3):
                first = await r.spawn()
                await _until(lambda f=first: len(f.lines) > 2, 30)
                while len(orphans := await r.orders()) < 2:
                    await asyncio.sleep(0.1)
                await first.kill()
                # a batch the killed run sent just before may still land (a 400 ms block):
                # wait it out, so orders that are really left behind are what the next run
                # starts with (rarely, that batch cancelled them all: kill another run)
                await asyncio.sleep(1.0)
                if orphans := await r.orders():
                    break
            assert orphans, "every killed run's last batch cleared its own orders"
            old = orphans[0].rsplit("-", 1)[0]  # the killed run's client-id prefix
            second = await r.spawn()
            while not any(cid.rsplit("-", 1)[0] != old for cid in await r.orders()):
                await asyncio.sleep(0.05)  # until the new run quotes
            assert second.lines[-1]["orphans_at_start"] >= 1
            # well before its first periodic reconcile (5 s), a clean stop leaves nothing:
            # the orphans were its own orders from the first quote on (cancelled or kept)
            second.proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.proc.wait(), 15) == 0
            assert await r.orders() == []
            running = await r.spawn()
            await _until(lambda: running.lines[-1].get("open_orders", 0) >= 2, 30)
            assert running.lines[-1]["orphans_at_start"] == 0

            # 2. the watcher runs; the hot path is killed while it quotes
            workers = [
                control_worker(tenv.client, r.settings),
                *host_workers(tenv.client, r.settings),
            ]
            tasks = [asyncio.create_task(w.run()) for w in workers]
            try:
                await asyncio.sleep(1.0)  # the watcher sees it alive
                assert await _deadman_results(tenv.client) == []
                assert len(await r.orders()) >= 2
                t0 = time.monotonic()
                await running.kill()
                while await r.orders():
                    assert time.monotonic() - t0 < 15, "orders still resting after the switch"
                    await asyncio.sleep(0.05)
                cancelled_s = time.monotonic() - t0
                results: list[DeadmanResult] = []
                while not results:
                    results = await _deadman_results(tenv.client)
                    await asyncio.sleep(0.1)
                assert len(results) == 1 and results[0].verified_open == 0
                assert results[0].market == MARKET and not results[0].hotpath_halted
                halted, reason = await _halt_record(pg_dsn)
                assert halted and "dead-man switch" in reason

                # 3. restarted: halted until an operator resumes, nothing adopted or placed
                third = await r.spawn()
                assert third.control["state"] == "halted"
                await asyncio.sleep(1.2)  # three blocks
                assert await r.orders() == []
                assert third.lines[-1]["state"] == "halted"
                assert third.lines[-1]["orphans_at_start"] == 0
                assert third.lines[-1]["open_orders"] == 0
            finally:
                for w in workers:
                    await w.shutdown()
                await asyncio.gather(*tasks, return_exceptions=True)
        assert cancelled_s < 5.0, f"kill to no order resting took {cancelled_s:.2f}s"
    finally:
        await tenv.shutdown()
