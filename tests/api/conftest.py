"""The API against real PostgreSQL and Redis (a fresh database per test), in process through
httpx's ASGI transport; Temporal and hot paths are started by the tests that need them."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from api.app import create_app
from api.auth.roles import Role
from api.context import AppContext
from flashmm.config import Settings
from flashmm.stores.pg.migrate import migrate

JWT_SECRET = "test-jwt-secret-" + "s" * 32
PASSWORD = "correct horse battery staple"
ROLES = [Role.VIEWER, Role.TRADER, Role.OPERATOR, Role.ADMIN]


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_for(pg_dsn: str, redis_url: str, tmp: Path, **over: Any) -> Settings:
    api = {
        "spool_dir": str(tmp / "api"),
        "rate_limits": {
            "read": {"rate": 10_000, "burst": 10_000},
            "write": {"rate": 10_000, "burst": 10_000},
            "estop": {"rate": 10_000, "burst": 10_000},
            "login": {"rate": 1_000, "burst": 1_000},
        },
        **over.pop("api", {}),
    }
    control = {"temporal_address": f"127.0.0.1:{closed_port()}", **over.pop("control", {})}
    return Settings(
        stores={"postgres_dsn": pg_dsn, "redis_url": redis_url},
        api=api,
        control=control,
        **over,
    )


@dataclass
class Harness:
    app: FastAPI
    ctx: AppContext
    http: httpx.AsyncClient
    tokens: dict[Role, str] = field(default_factory=dict)

    def auth(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def login(self, username: str, password: str = PASSWORD) -> httpx.Response:
        return await self.http.post(
            "/v1/auth/login", json={"username": username, "password": password}
        )

    async def audit_rows(self) -> list[dict[str, Any]]:
        rows = await self.ctx.pool.fetch("SELECT * FROM audit_log ORDER BY id")
        return [dict(r) for r in rows]


async def make_harness(settings: Settings, users: bool = True) -> Harness:
    await migrate(settings.stores.postgres_dsn)
    ctx = await AppContext.create(settings)
    app = create_app(settings, ctx)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
    h = Harness(app, ctx, http)
    if users:
        for role in ROLES:
            await ctx.identities.create_user(role.value, PASSWORD, role)
            r = await h.login(role.value)
            assert r.status_code == 200, r.text
            h.tokens[role] = r.json()["access_token"]
    return h


@pytest.fixture
def jwt_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASHMM_API_JWT_SECRET", JWT_SECRET)
    monkeypatch.setenv("FLASHMM_CONTROL_TOKEN", "t" * 32)  # the test hot paths' token


@pytest_asyncio.fixture
async def harness(
    jwt_env: None, pg_dsn: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[Harness]:
    h = await make_harness(settings_for(pg_dsn, redis_url, tmp_path))
    try:
        yield h
    finally:
        await h.http.aclose()
        await h.ctx.close()
