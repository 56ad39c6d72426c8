"""Every mutating call is on the tamper-evident record — allowed, refused or failed — with
who, what, target, parameters (secrets redacted), outcome and the request id; and nothing
is lost while PostgreSQL is down."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from api.audit import AuditSink
from api.auth.roles import Role
from flashmm.redact import MASK
from flashmm.stores.pg import audit
from tests.api.conftest import PASSWORD, Harness, closed_port


async def test_mutating_calls_are_audited_with_the_request_id(harness: Harness) -> None:
    h = harness
    before = len(await h.audit_rows())
    r = await h.http.post(
        "/v1/users",
        json={"username": "carol", "password": "another long password", "role": "trader"},
        headers={**h.auth(Role.ADMIN), "X-Request-ID": "req-123"},
    )
    assert r.status_code == 201 and r.headers["x-request-id"] == "req-123"
    denied = await h.http.post(
        "/v1/api-keys", json={"name": "x", "role": "admin"}, headers=h.auth(Role.VIEWER)
    )
    assert denied.status_code == 403
    halt = await h.http.post(
        "/v1/markets/SEI-USDC/halt", json={"reason": "drill"}, headers=h.auth(Role.TRADER)
    )
    assert halt.status_code == 503  # Temporal is down in this test: still on the record
    reads = await h.http.get("/v1/markets", headers=h.auth(Role.VIEWER))
    assert reads.status_code == 200
    rows = (await h.audit_rows())[before:]
    assert [(x["actor"], x["action"], x["target"], x["outcome"]) for x in rows] == [
        ("user:admin", "users.create", "-", "ok"),
        ("user:viewer", "keys.create_api", "-", "http 403"),
        ("user:trader", "markets.halt", "SEI-USDC", "http 503"),
    ]
    assert rows[0]["request_id"] == "req-123"
    assert rows[2]["request_id"] == halt.headers["x-request-id"]
    params = [__import__("json").loads(x["params"]) for x in rows]
    assert params[0] == {"username": "carol", "password": MASK, "role": "trader"}
    assert params[2] == {"reason": "drill"}
    async with h.ctx.pool.acquire() as conn:
        assert (await audit.verify(conn)).ok


async def test_logins_are_audited_without_the_password(harness: Harness) -> None:
    h = harness
    await h.login("viewer", "not the password")
    await h.login("viewer")
    rows = (await h.audit_rows())[-2:]
    assert [(x["actor"], x["action"], x["outcome"]) for x in rows] == [
        ("login:viewer", "auth.login", "http 401"),
        ("user:viewer", "auth.login", "ok"),
    ]
    assert PASSWORD not in str(rows) and "not the password" not in str(rows)


async def test_the_audit_log_cannot_be_edited(harness: Harness) -> None:
    h = harness
    await h.http.post("/v1/backups", json={}, headers=h.auth(Role.OPERATOR))
    try:
        await h.ctx.pool.execute("UPDATE audit_log SET outcome = 'ok'")
    except asyncpg.RaiseError as e:
        assert "append-only" in str(e)
    else:
        raise AssertionError("the audit log accepted an UPDATE")


async def test_entries_spool_while_postgres_is_down_and_move_in_order(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    dead = await asyncpg.create_pool(
        f"postgresql://flashmm@127.0.0.1:{closed_port()}/flashmm", min_size=0, max_size=1
    )
    spool = tmp_path / "spool" / "audit.jsonl"
    sink = AuditSink(dead, spool)
    assert await sink.record("user:a", "estop", "SEI/USDC", {}, "ok", "r1") == "spooled"
    assert await sink.record("user:b", "markets.halt", "SEI/USDC", {"token": "t"}, "ok", "r2") == (
        "spooled"
    )
    assert spool.exists() and f'"{MASK}"' in spool.read_text()
    assert await sink.drain() == 0  # still down: nothing moves, nothing is dropped
    sink.pool = h.ctx.pool  # PostgreSQL is back
    before = len(await h.audit_rows())
    assert await sink.drain() == 2
    assert not spool.exists()
    rows = (await h.audit_rows())[before:]
    assert [(x["actor"], x["request_id"]) for x in rows] == [("user:a", "r1"), ("user:b", "r2")]
    assert await sink.drain() == 0  # drained once: no duplicates
    async with h.ctx.pool.acquire() as conn:
        assert (await audit.verify(conn)).ok
    await dead.close()
