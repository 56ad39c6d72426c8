"""The dead-man's switch on loopback: a hot-path process quoting on the localnet (400 ms
blocks) is killed with SIGKILL; measured from the kill to the DeadmanSwitch workflow's
verified cancel (its ``venue_cancel_all`` activity completed: no order of the account rests),
to the watcher's start of the workflow, and to the chain showing no order (polled).

Every round restarts the hot path (it comes back halted, as it should), resumes it through
its control API, waits for quotes on the chain and kills it again.

    .venv/bin/python -m bench.deadman [--rounds N]   # merges into bench/results.json
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import sys
import time
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

import aiohttp

from bench.localnet import start_localnet

MARKET = "SEI/USDC"
REDIS_DB = 14  # a database of its own on the local Redis (heartbeats are per market)
DB = "flashmm_bench_deadman"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _spawn(env: dict[str, str]) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    hp = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "hotpath",
        "--market",
        MARKET,
        "--json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert hp.stdout is not None
    control: dict[str, Any] = json.loads(await asyncio.wait_for(hp.stdout.readline(), 60))

    async def drain() -> None:  # keep its status lines from filling the pipe
        assert hp.stdout is not None
        while await hp.stdout.readline():
            pass

    hp._drain = asyncio.create_task(drain())  # type: ignore[attr-defined]
    return hp, control


async def _incident_times(client: Any, seen: set[str]) -> tuple[float, float]:
    """(workflow started, cancel verified) wall times of the next new DeadmanSwitch run."""
    from temporalio.api.enums.v1 import EventType

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        async for wf in client.list_workflows('WorkflowType="DeadmanSwitch"'):
            if wf.id in seen:
                continue
            handle = client.get_workflow_handle(wf.id, run_id=wf.run_id)
            await handle.result()
            seen.add(wf.id)
            started = verified = 0.0
            scheduled: set[int] = set()
            async for ev in handle.fetch_history_events():
                t = ev.event_time.ToDatetime().timestamp()
                if ev.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
                    started = t
                elif ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                    name = ev.activity_task_scheduled_event_attributes.activity_type.name
                    if name == "venue_cancel_all":
                        scheduled.add(ev.event_id)
                elif ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                    attrs = ev.activity_task_completed_event_attributes
                    if attrs.scheduled_event_id in scheduled:
                        verified = t
            return started, verified
        await asyncio.sleep(0.2)
    raise RuntimeError("no DeadmanSwitch workflow ran")


async def _measure(rounds: int, pg: str) -> dict[str, list[float]]:
    import redis.asyncio as aioredis
    from temporalio.testing import WorkflowEnvironment

    from flashmm import devservices
    from flashmm.config import load_settings
    from flashmm.venue.sei.wallet import Wallet
    from workers.run import control_worker, host_workers

    run = Path(mkdtemp(prefix="flashmm-deadman-"))
    token = secrets.token_urlsafe(24)
    redis_url = devservices.REDIS_URL.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    r = aioredis.from_url(redis_url)
    await r.flushdb()
    await r.aclose()
    node, ready = await start_localnet()
    url = f"http://127.0.0.1:{_port()}"
    env = {
        **os.environ,
        "FLASHMM_VENUE__REST_URLS": json.dumps([ready["rest"]]),
        "FLASHMM_VENUE__WS_URLS": json.dumps([ready["rpc"]]),
        "FLASHMM_CONTROL_TOKEN": token,
        "FLASHMM_HOTPATH__CONTROL_PORT": url.rsplit(":", 1)[1],
        "FLASHMM_HOTPATH__STATE_DIR": str(run / "state"),
        "FLASHMM_STORES__POSTGRES_DSN": pg,
        "FLASHMM_STORES__REDIS_URL": redis_url,
        "FLASHMM_STORES__JOURNAL_DIR": str(run / "journal"),
        "FLASHMM_LOG_LEVEL": "ERROR",
    }
    os.environ["FLASHMM_CONTROL_TOKEN"] = token
    s = load_settings(
        stores={"postgres_dsn": pg, "redis_url": redis_url},
        venue={"rest_urls": [ready["rest"]], "ws_urls": [ready["rpc"]]},
        control={"hotpaths": {MARKET: url}},
    )
    address = Wallet.from_mnemonic(s.venue.mnemonic("dev", MARKET)).address
    orders_url = (
        f"{ready['rest']}/sei-protocol/seichain/dex/get_orders/"
        f"{s.market(MARKET).contract_address()}/{address}"
    )
    tenv = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        ui=False,
        dev_server_extra_args=["--log-level", "error"],
    )
    workers = [control_worker(tenv.client, s), *host_workers(tenv.client, s)]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    out: dict[str, list[float]] = {"verified": [], "started": [], "chain": []}
    seen: set[str] = set()
    hp: asyncio.subprocess.Process | None = None
    try:
        async with aiohttp.ClientSession() as http:

            async def resting() -> int:
                async with http.get(orders_url) as resp:
                    return len((await resp.json())["orders"])

            for i in range(rounds):
                hp, control = await _spawn(env)
                if control["state"] == "halted":  # the last round's incident, as it should
                    async with http.post(
                        f"{url}/v1/commands",
                        headers={"Authorization": f"Bearer {token}"},
                        json={"command_id": f"bench-resume-{i}", "command": "resume"},
                    ) as resp:
                        assert resp.status == 200, await resp.text()
                while await resting() < 2:  # quotes resting on chain before each kill
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1.0)  # and the watcher has seen it alive
                kill_wall, t0 = time.time(), time.perf_counter()
                hp.kill()
                await hp.wait()
                while await resting():
                    await asyncio.sleep(0.02)
                out["chain"].append((time.perf_counter() - t0) * 1000)
                started, verified = await _incident_times(tenv.client, seen)
                out["started"].append((started - kill_wall) * 1000)
                out["verified"].append((verified - kill_wall) * 1000)
    finally:
        if hp is not None and hp.returncode is None:
            hp.kill()
            await hp.wait()
        for w in workers:
            await w.shutdown()
        await asyncio.gather(*tasks, return_exceptions=True)
        await tenv.shutdown()
        node.terminate()
        await node.wait()
    return out


async def _bench_db() -> str:
    """A database of its own (the halt it records must not reach other benchmarks)."""
    import asyncpg

    from flashmm import devservices

    base = devservices.PG_DSN.rsplit("/", 1)[0]
    conn = await asyncpg.connect(f"{base}/postgres")
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DB):
            await conn.execute(f"CREATE DATABASE {DB}")
    finally:
        await conn.close()
    return f"{base}/{DB}"


def bench_deadman(rounds: int = 10) -> dict[str, float]:
    from flashmm import devservices

    devservices.ensure()  # the halt is persisted in PostgreSQL, heartbeats live in Redis
    m = asyncio.run(_measure(rounds, asyncio.run(_bench_db())))

    def p(xs: list[float], q: float) -> float:
        s = sorted(xs)
        return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]

    return {
        "deadman.cancelled_p50_ms": p(m["verified"], 50),
        "deadman.cancelled_p99_ms": p(m["verified"], 99),
        "deadman.fired_p99_ms": p(m["started"], 99),
        "deadman.chain_clear_p99_ms": p(m["chain"], 99),
        "deadman.rounds": float(rounds),
    }


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--out", default="bench/results.json")
    a = ap.parse_args()
    figures = bench_deadman(a.rounds)
    out = Path(a.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    results.update(figures)
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
