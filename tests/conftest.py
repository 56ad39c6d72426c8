"""Shared fixtures: the real local servers (started once, shared by all workers) and a
fresh PostgreSQL database / Redis database per test that asks for one."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flashmm import devservices


class _ReentrantSafe(dict):  # type: ignore[type-arg]
    """CPython 3.11's import lock bookkeeping is not reentrant (gh-106176, fixed in 3.12): an
    import run by a finalizer in the middle of another import in the same thread deletes the
    outer entry, and the outer ``del _blocking_on[tid]`` raises ``KeyError: <thread id>``.
    Seen once in CI while a Temporal worker validated its workflows in the sandbox."""

    def __delitem__(self, key: object) -> None:
        self.pop(key, None)


if sys.version_info < (3, 12):
    import importlib._bootstrap as _bootstrap

    _bootstrap._blocking_on = _ReentrantSafe(_bootstrap._blocking_on)  # type: ignore[attr-defined]

# a demo running on this machine must not steer the tests' commands (tests that run the demo
# point FLASHMM_PROFILE at a file of their own)
os.environ["FLASHMM_PROFILE"] = "none"


@pytest.fixture(scope="session")
def services() -> dict[str, str]:
    """This project's PostgreSQL, Redis and VictoriaMetrics on loopback (started if not
    running; private ports where a foreign server holds a configured one)."""
    return devservices.ensure().as_dict()


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


@dataclass(frozen=True)
class PgRoles:
    """A migrated database with its own two roles (names unique to the test)."""

    admin_dsn: str  # the superuser's: what a test uses to act as the owner (SET ROLE)
    app_dsn: str  # the application role's: what the services connect with
    owner: str
    app: str


@pytest.fixture
def pg_roles(pg_dsn: str) -> Iterator[PgRoles]:
    """``pg_dsn`` migrated as ``flashmm db migrate`` does it, with an owner role and an
    application role of this test's own; both are dropped afterwards."""
    import asyncpg

    from flashmm.stores.pg.migrate import migrate
    from flashmm.stores.pg.roles import DbRoles, ident, with_user

    name = pg_dsn.rsplit("/", 1)[1]
    roles = DbRoles(f"{name}_owner", f"{name}_app", app_password=secrets.token_urlsafe(16))
    asyncio.run(migrate(pg_dsn, roles=roles))

    async def drop() -> None:
        both = f"{ident(roles.owner)}, {ident(roles.app)}"
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute(f"DROP OWNED BY {both} CASCADE")
        finally:
            await conn.close()
        conn = await asyncpg.connect(pg_dsn.rsplit("/", 1)[0] + "/postgres")
        try:
            await conn.execute(f"DROP ROLE IF EXISTS {both}")
        finally:
            await conn.close()

    try:
        app_dsn = with_user(pg_dsn, roles.app, roles.app_password)
        yield PgRoles(pg_dsn, app_dsn, roles.owner, roles.app)
    finally:
        asyncio.run(drop())


def shared_data_dir() -> Path | None:
    """The recorded real markets (never copied into the repository): ``$FLASHMM_SHARED_DATA``,
    else ``../shared/data`` beside the checkout, else the machine's ``/work/shared/data``."""
    env = os.environ.get("FLASHMM_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[2] / "shared" / "data"]
    candidates += [Path("/work/shared/data")]
    for c in candidates:
        if (c / "README.md").is_file():
            return c
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder; the test is skipped, saying why, when it is absent."""
    d = shared_data_dir()
    if d is None:
        pytest.skip("real market data not found: set FLASHMM_SHARED_DATA or put ../shared/data")
    return d


# the real recordings the replay tests use, imported once per test process
REAL_STORES = {
    "btc-usdm-2024": (
        "BTCUSDT",
        "0.1",
        "0.001",
        ["binance-usdm/btcusdt_20240718.gz", "binance-usdm/btcusdt_20240719.gz"],
    ),
    "btc-usdm-2023": (
        "BTCUSDT",
        "0.1",
        "0.001",
        ["binance-usdm/btcusdt_20230404.dat.gz", "binance-usdm/btcusdt_20230405.dat.gz"],
    ),
    "btc-spot-2024": (
        "BTCUSDT",
        "0.01",
        "0.00000001",
        ["binance-spot/btcusdt_20240808.gz", "binance-spot/btcusdt_20240809.gz"],
    ),
    "eth-usdm-2024": (
        "ETHUSDT",
        "0.01",
        "0.001",
        ["binance-usdm/ethusdt_20240718.gz", "binance-usdm/ethusdt_20240719.gz"],
    ),
}


@pytest.fixture(scope="session")
def real_store(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``real_store(name)``: the path of an event store imported from the shared recordings."""
    from flashmm.marketdata.importers import ImportOptions, import_files
    from flashmm.marketdata.store import StoreInstrument, write_store

    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            symbol, tick, lot, files = REAL_STORES[name]
            events, manifest = import_files(
                "binance-ws",
                [shared_data / f for f in files],
                StoreInstrument(symbol, tick, lot),
                ImportOptions(),
            )
            made[name] = write_store(tmp_path_factory.mktemp(name), events, manifest)
        return made[name]

    return get


@pytest.fixture(autouse=True)
def _settings_file_per_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """``load_settings(path)`` records the path in ``FLASHMM_CONFIG`` for child processes;
    undo that after each test, so a later ``load_settings()`` never reads another test's file."""
    monkeypatch.delenv("FLASHMM_CONFIG", raising=False)
