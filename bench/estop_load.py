"""Emergency stop under read load: ``flashmm api`` (uvicorn, its own process) over real
PostgreSQL and Redis and a Temporal dev server, a real hot-path control server (a quote loop
on the in-process simulated venue, in this process), and 200 clients reading as fast as the
API lets them, from a separate process (closed loop, no think time; a 429/503 is retried
after its ``Retry-After``).

The readers share the emergency-stop caller's token (the worse case: one identity). Each
round sends ``POST /v1/emergency-stop`` and records ``estop.halt_*``: request sent → the
hot path's quote loop halted (observed in this process), and ``estop.response_*``: request
sent → the 202 received. The hot path is resumed between rounds.

``python -m bench.estop_load [rounds]`` runs it alone; ``load`` is the reader process."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

import aiohttp
import asyncpg

from bench.api import PASSWORD, READS, _seed
from flashmm import devservices
from hotpath.loop import QuoteLoop

CLIENTS = 200


class _TimedLoop(QuoteLoop):
    """The quote loop, noting when it was told to halt."""

    halted_at: float = 0.0

    async def halt(self, reason: str) -> None:
        self.halted_at = time.perf_counter()
        await super().halt(reason)


async def _readers(url: str, token: str, clients: int, seconds: float) -> dict[str, Any]:
    """The load: ``clients`` closed-loop readers on their own connections."""
    counts = {"ok": 0, "limited": 0, "errors": 0}
    end = time.perf_counter() + seconds
    conn = aiohttp.TCPConnector(limit=0)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(connector=conn, headers=headers) as s:

        async def client(k: int) -> None:
            i = k
            while time.perf_counter() < end:
                i += 1
                try:
                    async with s.get(url + READS[i % len(READS)]) as r:
                        await r.read()
                        if r.status == 200:
                            counts["ok"] += 1
                        elif r.status in (429, 503):
                            counts["limited"] += 1
                            wait = float(r.headers.get("Retry-After", "1"))
                            await asyncio.sleep(min(wait, max(0.0, end - time.perf_counter())))
                        else:
                            counts["errors"] += 1
                except (aiohttp.ClientError, TimeoutError):
                    counts["errors"] += 1
                    await asyncio.sleep(0.05)

        await asyncio.gather(*(client(k) for k in range(clients)))
    return {**counts, "reads_per_s": round(counts["ok"] / seconds, 1)}


async def _measure(
    url: str, token: str, control: Any, loop: _TimedLoop, rounds: int, gap_s: float
) -> tuple[list[float], list[float]]:
    halt_ms: list[float] = []
    response_ms: list[float] = []
    auth = {"Authorization": f"Bearer {token}"}
    body = {"markets": ["SEI-USDC"], "reason": "bench under load"}
    async with aiohttp.ClientSession(headers=auth) as http:
        for _ in range(rounds):
            loop.halted_at = 0.0
            t0 = time.perf_counter()
            async with http.post(url + "/v1/emergency-stop", json=body) as r:
                text = await r.text()
                t1 = time.perf_counter()
            assert r.status == 202, (r.status, text)
            assert json.loads(text)["markets"]["SEI/USDC"]["halted"], text
            assert loop.halted_at > 0.0
            halt_ms.append((loop.halted_at - t0) * 1000)
            response_ms.append((t1 - t0) * 1000)
            await control.execute(f"bench-resume-{uuid.uuid4().hex}", "resume", {})
            await asyncio.sleep(gap_s)
    return halt_ms, response_ms


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return round(s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))], 2)


async def _run(dsn: str, rounds: int, gap_s: float) -> dict[str, Any]:
    from temporalio.testing import WorkflowEnvironment

    from flashmm.domain.instrument import SEI_USDC
    from flashmm.sim.inprocess import InProcessVenue
    from flashmm.sim.params import MarketParams
    from hotpath.control import ControlServer
    from hotpath.control_state import ControlState
    from hotpath.engine import MarketMaker
    from hotpath.loop import LoopConfig
    from hotpath.quoting.params import QuoteParams
    from hotpath.risk import RiskLimits

    await _seed(dsn)
    run = Path(mkdtemp(prefix="flashmm-estop-load-"))
    token = secrets.token_urlsafe(24)
    venue = InProcessVenue(SEI_USDC, MarketParams(seed=4, warmup_s=5))
    ql = _TimedLoop(MarketMaker(SEI_USDC, QuoteParams(), RiskLimits()), venue, LoopConfig())
    control = ControlServer(ql, run / "control.json", token)
    control.state = ControlState(state="trading")
    control.apply_persisted()
    await control.start()
    stop = asyncio.Event()
    quoting = asyncio.create_task(ql.run(stop))
    tenv = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        ui=False,
        dev_server_extra_args=["--log-level", "error"],
    )
    env = {
        **os.environ,
        "FLASHMM_API_JWT_SECRET": uuid.uuid4().hex * 2,
        "FLASHMM_STORES__POSTGRES_DSN": dsn,
        "FLASHMM_STORES__REDIS_URL": devservices.REDIS_URL.rsplit("/", 1)[0] + "/14",
        "FLASHMM_CONTROL__TEMPORAL_ADDRESS": tenv.client.service_client.config.target_host,
        "FLASHMM_CONTROL__HOTPATHS": json.dumps({"SEI/USDC": f"http://127.0.0.1:{control.port}"}),
        "FLASHMM_CONTROL_TOKEN": token,
        # the readers are meant to load the API, not to be turned away by their rate limit
        "FLASHMM_API__RATE_LIMITS__READ": json.dumps({"rate": 100000, "burst": 100000}),
        "FLASHMM_API__SPOOL_DIR": str(run / "api"),
        "FLASHMM_LOG_LEVEL": "WARNING",
        "FLASHMM_API_PASSWORD": PASSWORD,
    }
    cli = [sys.executable, "-m", "cli"]
    api = load = None
    try:
        subprocess.run(
            [*cli, "api-user", "add", "bench", "--role", "operator"],
            env=env,
            check=True,
            capture_output=True,
        )
        api = subprocess.Popen(
            [*cli, "api", "--port", "0"], env=env, stdout=subprocess.PIPE, text=True
        )
        assert api.stdout is not None
        url = f"http://127.0.0.1:{json.loads(api.stdout.readline())['port']}"
        async with (
            aiohttp.ClientSession() as s,
            s.post(url + "/v1/auth/login", json={"username": "bench", "password": PASSWORD}) as r,
        ):
            access = (await r.json())["access_token"]
        idle_halt, idle_response = await _measure(url, access, control, ql, 5, 0.1)  # warm, no load
        seconds = rounds * (gap_s + 0.05) + 3.0
        load = subprocess.Popen(
            [sys.executable, "-m", "bench.estop_load", "load", url, access, str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        await asyncio.sleep(2.0)  # the readers connected and at full speed
        halt, response = await _measure(url, access, control, ql, rounds, gap_s)
        out, _ = await asyncio.to_thread(load.communicate, None, seconds + 30)
        readers = json.loads(out)
    finally:
        for p in (load, api):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(10)
        stop.set()
        await asyncio.wait_for(quoting, 10)
        await control.stop()
        await venue.close()
        await tenv.shutdown()
    print("halts (ms):", sorted(round(h) for h in halt), file=sys.stderr)
    return {
        "estop.halt_p50_ms_under_load": _pct(halt, 50),
        "estop.halt_p90_ms_under_load": _pct(halt, 90),
        "estop.halt_p99_ms_under_load": _pct(halt, 99),
        "estop.halt_max_ms_under_load": _pct(halt, 100),
        "estop.response_p50_ms_under_load": _pct(response, 50),
        "estop.response_p99_ms_under_load": _pct(response, 99),
        "estop.halt_p50_ms_idle_api": _pct(idle_halt, 50),
        "estop.response_p50_ms_idle_api": _pct(idle_response, 50),
        "estop.load_clients": float(CLIENTS),
        "estop.load_reads_per_s": readers["reads_per_s"],
        "estop.load_reads_refused": float(readers["limited"]),
        "estop.load_read_errors": float(readers["errors"]),
        "estop.load_rounds": float(rounds),
    }


def bench_estop_under_load(rounds: int = 100, gap_s: float = 0.55) -> dict[str, Any]:
    devservices.ensure()
    base = devservices.PG_DSN.rsplit("/", 1)[0]
    db = f"bench_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        c = await asyncpg.connect(f"{base}/postgres")
        try:
            await c.execute(sql)
        finally:
            await c.close()

    asyncio.run(admin(f"CREATE DATABASE {db}"))
    try:
        return asyncio.run(_run(f"{base}/{db}", rounds, gap_s))
    finally:
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "load":
        url, token, secs = sys.argv[2], sys.argv[3], float(sys.argv[4])
        print(json.dumps(asyncio.run(_readers(url, token, CLIENTS, secs))), flush=True)
    else:
        n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
        print(json.dumps(bench_estop_under_load(n), indent=2))
