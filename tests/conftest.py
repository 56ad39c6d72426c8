"""Shared fixtures: the real local servers (started once, shared by all workers) and a
fresh PostgreSQL database / Redis database per test that asks for one."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import pytest

from flashmm import devservices


@pytest.fixture(scope="session")
def services() -> dict[str, str]:
    """PostgreSQL, Redis and VictoriaMetrics on loopback (started if not running)."""
    devservices.ensure()
    return {"pg": devservices.PG_DSN, "redis": devservices.REDIS_URL, "vm": devservices.VM_URL}


@pytest.fixture
def pg_dsn(services: dict[str, str]) -> Iterator[str]:
    """A new, empty database for this test (dropped afterwards)."""
    import asyncpg

    base = services["pg"].rsplit("/", 1)[0]
    name = f"t_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(f"{base}/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f"CREATE DATABASE {name}"))
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
def redis_url(services: dict[str, str]) -> str:
    """A Redis logical database of this xdist worker's own (flushed before the test)."""
    import redis

    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    db = 1 + int(worker.removeprefix("gw") or 0) % 15
    url = services["redis"].rsplit("/", 1)[0] + f"/{db}"
    redis.Redis.from_url(url).flushdb()
    return url
