"""Operator API read latency: ``flashmm api`` as its own process (uvicorn) over a database
with 20k fills and 2k orders, driven open-loop at a fixed rate from this process on
loopback; latency counts from each request's scheduled time (no coordinated omission)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg

from flashmm import devservices
from flashmm.stores.pg.migrate import migrate

READS = [
    "/v1/markets",
    "/v1/positions",
    "/v1/fills?limit=100",
    "/v1/fills?market=SEI-USDC&limit=50",
    "/v1/orders?state=all&limit=100",
    "/v1/pnl",
    "/v1/risk",
]
PASSWORD = "bench password 1234"


async def _seed(dsn: str) -> None:
    await migrate(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        t0 = datetime.now(UTC) - timedelta(days=2)
        rng = random.Random(1)
        fills = [
            (
                f"f{i}",
                f"c{i // 2}",
                rng.choice(["SEI/USDC", "ATOM/USDC"]),
                rng.choice([-1, 1]),
                0.5 + rng.random() / 100,
                rng.randint(1, 500),
                0.001,
                "maker",
                t0 + timedelta(seconds=i * 8),
            )
            for i in range(20_000)
        ]
        await conn.copy_records_to_table(
            "fills",
            records=fills,
            columns=[
                "fill_id", "client_id", "market", "side", "price", "quantity", "fee",
                "liquidity", "ts",
            ],
        )  # fmt: skip
        orders = [
            (f"c{i}", f[2], f[3], f[4], f[5], "filled", f[8], f[8])
            for i, f in enumerate(fills[:2000])
        ]
        await conn.copy_records_to_table(
            "orders",
            records=orders,
            columns=[
                "client_id", "market", "side", "price", "quantity", "state", "created_at",
                "updated_at",
            ],
        )  # fmt: skip
        for m in ("SEI/USDC", "ATOM/USDC"):
            await conn.execute("INSERT INTO risk_state VALUES ($1, 'active', false, '', now())", m)
            for d in range(30):
                await conn.execute(
                    "INSERT INTO daily_pnl (market, day, net_pnl, fills, volume) "
                    "VALUES ($1, $2, $3, 100, 1000)",
                    m,
                    (t0 - timedelta(days=d)).date(),
                    rng.uniform(-5, 5),
                )
    finally:
        await conn.close()


async def _drive(url: str, token: str, rate: float, seconds: float) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    lat: list[float] = []
    errors = 0
    n = int(rate * seconds)
    conn = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=conn, headers=headers) as s:
        for path in READS:  # warm up every route once
            async with s.get(url + path) as r:
                assert r.status == 200, (path, r.status, await r.text())
        start = time.perf_counter() + 0.1

        async def one(i: int) -> None:
            nonlocal errors
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            try:
                async with s.get(url + READS[i % len(READS)]) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1
            lat.append((time.perf_counter() - due) * 1000)

        await asyncio.gather(*(one(i) for i in range(n)))
        took = time.perf_counter() - start
    lat.sort()
    return {
        "api.read_p50_ms": round(lat[len(lat) // 2], 2),
        "api.read_p99_ms": round(lat[int(len(lat) * 0.99) - 1], 2),
        "api.read_max_ms": round(lat[-1], 2),
        "api.read_rps": round(n / took, 1),
        "api.read_errors": errors,
    }


def bench_api(seconds: float = 20.0, rate: float = 200.0) -> dict[str, Any]:
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
    dsn = f"{base}/{db}"
    env = {
        **os.environ,
        "FLASHMM_API_JWT_SECRET": uuid.uuid4().hex * 2,
        "FLASHMM_STORES__POSTGRES_DSN": dsn,
        "FLASHMM_STORES__REDIS_URL": devservices.REDIS_URL.rsplit("/", 1)[0] + "/14",
        "FLASHMM_CONTROL__TEMPORAL_ADDRESS": "127.0.0.1:1",
        "FLASHMM_API__RATE_LIMITS__READ": json.dumps({"rate": 100000, "burst": 100000}),
        "FLASHMM_LOG_LEVEL": "WARNING",
        "FLASHMM_API_PASSWORD": PASSWORD,
    }
    cli = [sys.executable, "-m", "cli"]
    proc = None
    try:
        asyncio.run(_seed(dsn))
        subprocess.run(
            [*cli, "api-user", "add", "bench", "--role", "viewer"],
            env=env,
            check=True,
            capture_output=True,
        )
        proc = subprocess.Popen(
            [*cli, "api", "--port", "0"], env=env, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        url = f"http://127.0.0.1:{ready['port']}"

        async def go() -> dict[str, Any]:
            async with (
                aiohttp.ClientSession() as s,
                s.post(
                    url + "/v1/auth/login", json={"username": "bench", "password": PASSWORD}
                ) as r,
            ):
                token = (await r.json())["access_token"]
            return await _drive(url, token, rate, seconds)

        out = asyncio.run(go())
        out["api.read_rate_target"] = rate
        return out
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))


if __name__ == "__main__":
    print(json.dumps(bench_api(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0)))
