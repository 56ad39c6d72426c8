"""Emergency stop on loopback: from the request to the hot path halted (the direct control
call the API makes), and to every resting order verified cancelled on the localnet (the
EmergencyStop workflow's answer), with 400 ms blocks."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import time
from pathlib import Path
from tempfile import mkdtemp

import aiohttp

from bench.localnet import start_localnet


async def _measure(rounds: int) -> tuple[list[float], list[float]]:
    from temporalio.testing import WorkflowEnvironment

    from flashmm.config import load_settings
    from workers.run import control_worker, host_workers
    from workflows.starters import start_emergency_stop
    from workflows.types import EmergencyStopInput

    run = Path(mkdtemp(prefix="flashmm-estop-"))
    token = secrets.token_urlsafe(24)
    node, ready = await start_localnet()
    env = {
        **os.environ,
        "FLASHMM_VENUE__REST_URLS": json.dumps([ready["rest"]]),
        "FLASHMM_VENUE__WS_URLS": json.dumps([ready["rpc"]]),
        "FLASHMM_CONTROL_TOKEN": token,
        "FLASHMM_HOTPATH__STATE_DIR": str(run),
        "FLASHMM_STORES__ENABLED": "false",
        "FLASHMM_LOG_LEVEL": "WARNING",
    }
    hp = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "hotpath",
        "--market",
        "SEI/USDC",
        "--json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert hp.stdout is not None
    control = json.loads(await hp.stdout.readline())
    url = f"http://127.0.0.1:{control['port']}"
    os.environ["FLASHMM_CONTROL_TOKEN"] = token
    s = load_settings(
        stores={"enabled": False},
        venue={"rest_urls": [ready["rest"]], "ws_urls": [ready["rpc"]]},
        control={"hotpaths": {"SEI/USDC": url}},
    )
    tenv = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"), ui=False
    )
    halt_ms: list[float] = []
    verified_ms: list[float] = []
    workers = [control_worker(tenv.client, s), *host_workers(tenv.client, s)]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    auth = {"Authorization": f"Bearer {token}"}
    addr_url = (
        f"{ready['rest']}/sei-protocol/seichain/dex/get_orders/"
        f"{s.market('SEI/USDC').contract_address()}/"
    )
    from flashmm.venue.sei.wallet import Wallet

    address = Wallet.from_mnemonic(s.venue.mnemonic("dev", "SEI/USDC")).address
    try:
        async with aiohttp.ClientSession() as http:
            for i in range(rounds):
                while True:  # quotes resting on chain before each stop
                    async with http.get(addr_url + address) as r:
                        if len((await r.json())["orders"]) >= 2:
                            break
                    await asyncio.sleep(0.1)
                t0 = time.perf_counter()
                wf = asyncio.create_task(
                    start_emergency_stop(
                        tenv.client, EmergencyStopInput(["SEI/USDC"], f"bench {i}")
                    )
                )
                async with http.post(
                    f"{url}/v1/commands",
                    headers=auth,
                    json={
                        "command_id": f"bench-halt-{i}",
                        "command": "halt",
                        "args": {"reason": "bench"},
                    },
                ) as r:
                    assert r.status == 200, await r.text()
                halt_ms.append((time.perf_counter() - t0) * 1000)
                res = await (await wf).result()
                verified_ms.append((time.perf_counter() - t0) * 1000)
                assert res.markets[0].verified_open == 0
                async with http.post(
                    f"{url}/v1/commands",
                    headers=auth,
                    json={"command_id": f"bench-resume-{i}", "command": "resume"},
                ) as r:
                    assert r.status == 200, await r.text()
                await asyncio.sleep(0.2)
    finally:
        for w in workers:
            await w.shutdown()
        await asyncio.gather(*tasks, return_exceptions=True)
        await tenv.shutdown()
        for p in (hp, node):
            p.terminate()
            await p.wait()
    return halt_ms, verified_ms


BENCH_DSN = "postgresql://flashmm@127.0.0.1:55432/flashmm_bench"


async def _bench_db() -> None:
    import asyncpg

    conn = await asyncpg.connect(BENCH_DSN.rsplit("/", 1)[0] + "/postgres")
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname='flashmm_bench'"):
            await conn.execute("CREATE DATABASE flashmm_bench")
    finally:
        await conn.close()


def bench_estop(rounds: int = 15) -> dict[str, float]:
    from flashmm import devservices

    devservices.ensure()  # the workflow persists the halt in PostgreSQL: a bench database
    asyncio.run(_bench_db())
    halt, verified = asyncio.run(_measure(rounds))

    def p(xs: list[float], q: float) -> float:
        s = sorted(xs)
        return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]

    return {
        "estop.halt_p50_ms": p(halt, 50),
        "estop.halt_p99_ms": p(halt, 99),
        "estop.verified_p50_ms": p(verified, 50),
        "estop.verified_p99_ms": p(verified, 99),
        "estop.rounds": float(rounds),
    }
