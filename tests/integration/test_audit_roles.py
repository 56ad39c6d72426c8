"""The audit trail against its own database: the services' role cannot change it, and what
the owner can still do (delete the newest entries, rewrite one and recompute the whole
chain) is caught by ``flashmm audit verify`` against the anchors kept in Redis. Real
PostgreSQL and Redis (tests/conftest.py); each test database has roles of its own."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from flashmm.stores.pg import anchor, audit
from flashmm.stores.pg.migrate import MigrationError, load, migrate
from flashmm.stores.pg.roles import ident, scram_verifier, verifier_matches
from tests.conftest import PgRoles

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def redis_url(services: dict[str, str], pg_dsn: str) -> Iterator[str]:
    """Redis database 15, never flushed: the anchor keys carry the test database's unique
    name, so tests (and other runs flushing their own databases) cannot disturb them."""
    import redis

    url = services["redis"].rsplit("/", 1)[0] + "/15"
    yield url
    r = redis.Redis.from_url(url)
    try:
        r.delete(*anchor.keys(pg_dsn.rsplit("/", 1)[1]))
    finally:
        r.close()


def _cli(args: list[str], dsn: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHMM_")}
    env |= {
        "FLASHMM_STORES__POSTGRES_DSN": dsn,
        "FLASHMM_STORES__REDIS_URL": redis_url,
        "FLASHMM_LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _append(conn: asyncpg.Connection, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        await audit.append(conn, "ops", "halt", "SEI/USDC", {"i": i}, "ok", f"req-{i}")


async def _anchor(dsn: str, redis_url: str) -> anchor.Anchor | None:
    conn = await asyncpg.connect(dsn)
    r = aioredis.from_url(redis_url)
    try:
        return await anchor.anchor_once(conn, r)
    finally:
        await r.aclose()
        await conn.close()


class Owner:
    """The owner role at work, as a rogue owner would be: the superuser's connection with
    SET ROLE to the owner, so it has exactly the owner's rights."""

    def __init__(self, pg: PgRoles) -> None:
        self.pg = pg

    async def __aenter__(self) -> asyncpg.Connection:
        self.conn: asyncpg.Connection = await asyncpg.connect(self.pg.admin_dsn)
        await self.conn.execute(f"SET ROLE {ident(self.pg.owner)}")
        await self.conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update")
        return self.conn

    async def __aexit__(self, *exc: object) -> None:
        await self.conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update")
        await self.conn.close()


# --- the application role ---------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update",
        "ALTER TABLE audit_log DISABLE TRIGGER ALL",
        "UPDATE audit_log SET outcome = 'denied' WHERE id = 1",
        "DELETE FROM audit_log WHERE id = 2",
        "TRUNCATE audit_log",
        "DROP TABLE audit_log",
        "ALTER TABLE audit_log DROP CONSTRAINT audit_log_bounded",
        "DROP TRIGGER audit_log_no_update ON audit_log",
        "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$",
        "SELECT setval('audit_log_id_seq', 1)",
        "CREATE TABLE audit_log_copy (id bigint)",
        "UPDATE schema_migrations SET checksum = 'x'",
    ],
)
async def test_app_role_cannot_change_the_audit_log(pg_roles: PgRoles, sql: str) -> None:
    conn = await asyncpg.connect(pg_roles.app_dsn)
    try:
        await _append(conn, 3)  # it may append and read
        before = await conn.fetch("SELECT * FROM audit_log ORDER BY id")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(sql)
        assert await conn.fetch("SELECT * FROM audit_log ORDER BY id") == before
        assert (await audit.verify(conn)).ok
    finally:
        await conn.close()


async def test_app_role_owns_nothing_and_keeps_its_dml(pg_roles: PgRoles) -> None:
    conn = await asyncpg.connect(pg_roles.app_dsn)
    try:
        assert await conn.fetchval("SELECT current_user") == pg_roles.app
        owners = {
            r["tableowner"]
            for r in await conn.fetch(
                "SELECT tableowner FROM pg_tables WHERE schemaname = 'public'"
            )
        }
        assert owners == {pg_roles.owner}
        assert not await conn.fetchval(
            "SELECT pg_has_role($1, $2, 'MEMBER')", pg_roles.app, pg_roles.owner
        )
        await conn.execute("INSERT INTO risk_state VALUES ('SEI/USDC', 'halted', true, 'x', now())")
        await conn.execute("UPDATE risk_state SET reason = 'y'")
        await conn.execute(
            "INSERT INTO pending_estops (id, markets, reason, actor) VALUES ('e', '[]', 'r', 'a')"
        )
        await conn.execute("DELETE FROM pending_estops")
        assert await conn.fetchval("SELECT reason FROM risk_state") == "y"
    finally:
        await conn.close()
    # the services' start-up migration is a read when the schema is current
    assert await migrate(pg_roles.app_dsn) == []


async def test_app_role_cannot_apply_migrations(pg_roles: PgRoles, tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    for m in load():
        (d / f"{m.version:04d}_{m.name}.sql").write_text(m.sql)
    (d / f"{len(load()) + 1:04d}_more.sql").write_text("CREATE TABLE more (x int);")
    with pytest.raises(MigrationError, match="db migrate"):
        await migrate(pg_roles.app_dsn, d)


async def test_roles_take_over_a_database_migrated_before_them(pg_dsn: str) -> None:
    from flashmm.stores.pg.roles import DbRoles

    await migrate(pg_dsn)  # today's databases: everything owned by the connecting user
    conn = await asyncpg.connect(pg_dsn)
    try:
        await _append(conn, 4)
    finally:
        await conn.close()
    name = pg_dsn.rsplit("/", 1)[1]
    roles = DbRoles(f"{name}_owner", f"{name}_app")
    try:
        assert await migrate(pg_dsn, roles=roles) == []
        conn = await asyncpg.connect(pg_dsn)
        try:
            owners = await conn.fetch(
                """SELECT DISTINCT pg_get_userbyid(relowner) AS o FROM pg_class c
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE nspname = 'public' AND relkind IN ('r', 'S')"""
            )
            assert {r["o"] for r in owners} == {roles.owner}
            await conn.execute(f"SET ROLE {ident(roles.app)}")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER ALL")
            await conn.execute("RESET ROLE")
            assert (await audit.verify(conn)).entries == 4
        finally:
            await conn.close()
    finally:
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute(f"DROP OWNED BY {ident(roles.owner)}, {ident(roles.app)} CASCADE")
            await conn.execute(f"DROP ROLE {ident(roles.owner)}, {ident(roles.app)}")
        finally:
            await conn.close()


async def test_passwords_are_stored_as_scram_verifiers(pg_roles: PgRoles) -> None:
    password = pg_roles.app_dsn.rsplit("@", 1)[0].rsplit(":", 1)[1]
    conn = await asyncpg.connect(pg_roles.admin_dsn)
    try:
        stored = await conn.fetchval(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1", pg_roles.app
        )
        assert stored.startswith("SCRAM-SHA-256$4096:")
        assert verifier_matches(stored, password)
        assert not verifier_matches(stored, password + "x")
        # our verifier is PostgreSQL's own: the server computes one for a clear password
        await conn.execute("SET password_encryption = 'scram-sha-256'")
        probe = f"{pg_roles.app}_p"
        await conn.execute(f"CREATE ROLE {ident(probe)} PASSWORD 'pa''ss wörd'")
        try:
            theirs = await conn.fetchval(
                "SELECT rolpassword FROM pg_authid WHERE rolname = $1", probe
            )
        finally:
            await conn.execute(f"DROP ROLE {ident(probe)}")
    finally:
        await conn.close()
    assert verifier_matches(theirs, "pa'ss wörd")
    assert scram_verifier("x", b"0" * 16) == scram_verifier("x", b"0" * 16)


# --- the anchors ----------------------------------------------------------------------------


async def test_untouched_log_verifies_against_its_anchors(
    pg_roles: PgRoles, redis_url: str
) -> None:
    conn = await asyncpg.connect(pg_roles.app_dsn)
    try:
        await _append(conn, 5)
        first = await _anchor(pg_roles.app_dsn, redis_url)
        await _append(conn, 3, start=5)
        again = await _anchor(pg_roles.app_dsn, redis_url)
        same = await _anchor(pg_roles.app_dsn, redis_url)  # head unchanged: no new history
    finally:
        await conn.close()
    assert first is not None and again is not None and same is not None
    assert (again.id, same.id) == (first.id + 3, again.id)
    assert anchor.ANCHOR_ID._value.get() == again.id  # the Prometheus gauge
    r = aioredis.from_url(redis_url)
    try:
        name = pg_roles.app_dsn.rsplit("/", 1)[1]
        history = [json.loads(x) for x in await r.lrange(f"audit:anchor:{name}:history", 0, -1)]
    finally:
        await r.aclose()
    assert [h["id"] for h in history] == [again.id, first.id]
    ok = await asyncio.to_thread(_cli, ["audit", "verify"], pg_roles.app_dsn, redis_url)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == [
        "audit log intact: 8 entries",
        f"anchors: 3 match (latest id {again.id})",
    ]


async def test_owner_deleting_the_newest_entries_is_detected(
    pg_roles: PgRoles, redis_url: str
) -> None:
    conn = await asyncpg.connect(pg_roles.app_dsn)
    try:
        await _append(conn, 6)
        head = await _anchor(pg_roles.app_dsn, redis_url)
        assert head is not None
        async with Owner(pg_roles) as owner:
            await owner.execute("DELETE FROM audit_log WHERE id > $1", head.id - 2)
        assert (await audit.verify(conn)).ok  # the chain alone cannot see it
    finally:
        await conn.close()
    out = await asyncio.to_thread(_cli, ["audit", "verify"], pg_roles.app_dsn, redis_url)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"entry id {head.id}" in out.stderr
    assert f"the log ends at id {head.id - 2} (truncated)" in out.stderr


async def test_owner_rewriting_a_row_and_the_chain_is_detected(
    pg_roles: PgRoles, redis_url: str
) -> None:
    conn = await asyncpg.connect(pg_roles.app_dsn)
    try:
        await _append(conn, 6)
        head = await _anchor(pg_roles.app_dsn, redis_url)
        assert head is not None
        async with Owner(pg_roles) as owner:
            await _rewrite_and_rechain(owner, head.id - 3, outcome="denied")
        assert (await audit.verify(conn)).ok  # a perfect forgery as far as the chain goes
    finally:
        await conn.close()
    out = await asyncio.to_thread(_cli, ["audit", "verify"], pg_roles.app_dsn, redis_url)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"entry id {head.id} no longer has the hash anchored" in out.stderr
    assert "(rewritten)" in out.stderr
    # the anchoring process notices too, at its next tick
    anchor.ANCHOR_MISMATCH.set(0)
    await _anchor(pg_roles.app_dsn, redis_url)
    assert anchor.ANCHOR_MISMATCH._value.get() == 1


async def _rewrite_and_rechain(conn: asyncpg.Connection, from_id: int, outcome: str) -> None:
    rows = await conn.fetch("SELECT * FROM audit_log WHERE id >= $1 ORDER BY id", from_id)
    prev = await conn.fetchval("SELECT hash FROM audit_log WHERE id < $1 ORDER BY id DESC", from_id)
    prev = prev or audit.GENESIS
    for r in rows:
        ts = r["ts"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
        new_outcome = outcome if r["id"] == from_id else r["outcome"]
        h = audit.entry_hash(
            prev,
            ts,
            r["actor"],
            r["action"],
            r["target"],
            json.loads(r["params"]),
            new_outcome,
            r["request_id"],
        )
        await conn.execute(
            "UPDATE audit_log SET outcome = $2, prev_hash = $3, hash = $4 WHERE id = $1",
            r["id"],
            new_outcome,
            prev,
            h,
        )
        prev = h


async def test_verify_can_require_an_anchor(pg_roles: PgRoles, redis_url: str) -> None:
    conn = await asyncpg.connect(pg_roles.app_dsn)
    try:
        await _append(conn, 2)
    finally:
        await conn.close()
    args = ["audit", "verify", "--require-anchor"]
    out = await asyncio.to_thread(_cli, args, pg_roles.app_dsn, redis_url)
    assert out.returncode == 2 and "no audit anchor in Redis" in out.stderr
    await _anchor(pg_roles.app_dsn, redis_url)
    out = await asyncio.to_thread(_cli, args, pg_roles.app_dsn, redis_url)
    assert out.returncode == 0, out.stderr


async def test_anchor_loop_anchors_on_its_own(pg_roles: PgRoles, redis_url: str) -> None:
    pool = await asyncpg.create_pool(pg_roles.app_dsn, min_size=1, max_size=2)
    r = aioredis.from_url(redis_url, socket_timeout=5.0, socket_connect_timeout=5.0)
    task = asyncio.create_task(anchor.anchor_loop(pool, r, interval_s=0.05))

    async def anchored() -> Any:
        async with pool.acquire() as conn:
            await _append(conn, 2)
            name = await conn.fetchval("SELECT current_database()")
        for _ in range(100):
            kept = await anchor.load(r, name)
            if kept and kept[0].id == 2:
                break
            await asyncio.sleep(0.05)
        return kept

    try:
        kept = await asyncio.wait_for(anchored(), 30)  # a failure, never a hung suite
        assert kept and kept[0].id == 2
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        await r.aclose()
        await asyncio.wait_for(pool.close(), 10)


# --- bounded rows ---------------------------------------------------------------------------


async def test_audit_rows_are_bounded_with_a_marker(pg_roles: PgRoles) -> None:
    huge: dict[str, Any] = {"body": "x" * 1_000_000, "n": list(range(1000))}
    conn = await asyncpg.connect(pg_roles.app_dsn)
    try:
        await audit.append(conn, "a" * 5000, "login", "t" * 5000, huge, "o" * 100_000, "r" * 9000)
        row = await conn.fetchrow(
            """SELECT octet_length(params::text) AS p, octet_length(outcome) AS o,
                      octet_length(actor) AS a, octet_length(target) AS t,
                      octet_length(request_id) AS r, params::text AS params, outcome
               FROM audit_log"""
        )
        assert (await audit.verify(conn)).ok
        # the database's own ceiling stops a writer that skips the store
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                """INSERT INTO audit_log (ts, actor, action, target, params, outcome,
                                          request_id, prev_hash, hash)
                   VALUES (now(), 'a', 'b', 'c', $1::jsonb, 'o', 'r', 'p', 'h')""",
                json.dumps(huge),
            )
    finally:
        await conn.close()
    assert row["p"] <= audit.MAX_PARAMS_BYTES and row["o"] <= audit.MAX_OUTCOME_BYTES
    assert max(row["a"], row["t"], row["r"]) <= audit.MAX_TEXT_BYTES
    params = json.loads(row["params"])
    assert params["_truncated"] is True and params["_bytes"] > 1_000_000
    assert len(params["_sha256"]) == 64 and params["_preview"].startswith('{"body": "xxx')
    assert row["outcome"].endswith(audit.TRUNCATED)


async def test_small_rows_are_stored_as_they_are(pg_roles: PgRoles) -> None:
    conn = await asyncpg.connect(pg_roles.app_dsn)
    try:
        await audit.append(conn, "ops", "halt", "SEI/USDC", {"reason": "é"}, "ok", "r1")
        row = await conn.fetchrow("SELECT params::text AS p, outcome FROM audit_log")
    finally:
        await conn.close()
    assert json.loads(row["p"]) == {"reason": "é"} and row["outcome"] == "ok"


async def test_backup_as_the_app_role_records_the_audit_head(
    pg_roles: PgRoles, tmp_path: Path
) -> None:
    from flashmm.backup import pg

    conn = await asyncpg.connect(pg_roles.app_dsn)
    try:
        await _append(conn, 3)
        last = await conn.fetchrow("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
    finally:
        await conn.close()
    meta = await pg.dump(pg_roles.app_dsn, tmp_path / "pg.dump")
    assert meta["audit_head"] == {"id": last["id"], "hash": last["hash"]}
    assert (tmp_path / "pg.dump").stat().st_size > 0
