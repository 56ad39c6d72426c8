"""PostgreSQL against a real server: forward-only migrations, the hot path's durable writer
(idempotent records, memory bound and journal, replay, shutdown while the database is away,
malformed records) and the tamper-evident audit log with its CLI.

Each test gets a fresh empty database (``pg_dsn`` from ``tests/conftest.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from flashmm.stores.pg import audit
from flashmm.stores.pg.migrate import MIGRATIONS, MigrationError, load, migrate
from flashmm.stores.pg.writer import DurableWriter
from tests.integration.store_helpers import (
    error_count,
    fetch,
    fill_counts,
    fill_rec,
    free_port,
    order_rec,
    position_rec,
    risk_rec,
    unique,
    write_journal,
)

REPO = Path(__file__).resolve().parents[2]
TABLES = {
    "orders",
    "fills",
    "position_snapshots",
    "daily_pnl",
    "risk_state",
    "audit_log",
    "model_registry",
    "key_metadata",
    "backups",
}


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _names(directory: Path = MIGRATIONS) -> list[str]:
    return [f"{m.version:04d}_{m.name}" for m in load(directory)]


def _mig_dir(tmp_path: Path, extra: dict[str, str] | None = None) -> Path:
    """A migrations directory holding the real 0001 plus ``extra`` files."""
    d = tmp_path / unique("mig")
    d.mkdir()
    shutil.copy(MIGRATIONS / "0001_init.sql", d / "0001_init.sql")
    for name, sql in (extra or {}).items():
        (d / name).write_text(sql)
    return d


async def _tables(dsn: str) -> set[str]:
    rows = await fetch(
        dsn, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    )
    return {r["table_name"] for r in rows}


def _cli(args: list[str], dsn: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHMM_")}
    env["FLASHMM_STORES__POSTGRES_DSN"] = dsn
    env["FLASHMM_LOG_LEVEL"] = "WARNING"
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
async def db(pg_dsn: str) -> str:
    """A fresh database with the schema applied."""
    await migrate(pg_dsn)
    return pg_dsn


@contextlib.asynccontextmanager
async def running_writer(w: DurableWriter) -> AsyncIterator[DurableWriter]:
    w.start()
    try:
        yield w
    finally:
        await w.close(timeout_s=1.0)


def _writer(dsn: str, journal: Path, **kw: Any) -> DurableWriter:
    return DurableWriter(dsn, journal, name=unique("pgw"), **kw)


def _journal_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- migrations ---------------------------------------------------------------------------


async def test_migrate_applies_each_migration_once_and_records_checksums(pg_dsn: str) -> None:
    expected = _names()
    assert expected[0] == "0001_init"
    assert await migrate(pg_dsn) == expected
    assert await migrate(pg_dsn) == []  # second run: nothing to do
    rows = await fetch(pg_dsn, "SELECT version, name, checksum FROM schema_migrations ORDER BY 1")
    assert [f"{r['version']:04d}_{r['name']}" for r in rows] == expected
    for r in rows:
        path = MIGRATIONS / f"{r['version']:04d}_{r['name']}.sql"
        assert r["checksum"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert TABLES | {"schema_migrations"} <= await _tables(pg_dsn)
    trig = await fetch(
        pg_dsn, "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_log'::regclass"
    )
    assert {r["tgname"] for r in trig} == {"audit_log_no_update"}


async def test_migrate_refuses_a_changed_applied_migration(pg_dsn: str, tmp_path: Path) -> None:
    d = _mig_dir(tmp_path)
    assert await migrate(pg_dsn, d) == ["0001_init"]
    before = await fetch(pg_dsn, "SELECT checksum FROM schema_migrations")
    f = d / "0001_init.sql"
    f.write_text(f.read_text() + "\n-- an innocent-looking edit\n")
    (d / "0002_more.sql").write_text("CREATE TABLE more_things (id int);")
    with pytest.raises(MigrationError, match="0001_init changed after it was applied"):
        await migrate(pg_dsn, d)
    # nothing was applied past the refusal and the record is untouched
    assert "more_things" not in await _tables(pg_dsn)
    assert await fetch(pg_dsn, "SELECT checksum FROM schema_migrations") == before


async def test_migrate_refuses_a_database_with_unknown_newer_versions(
    pg_dsn: str, tmp_path: Path
) -> None:
    newer = _mig_dir(tmp_path, {"0002_extra.sql": "CREATE TABLE extra_t (id int);"})
    assert await migrate(pg_dsn, newer) == ["0001_init", "0002_extra"]
    older = _mig_dir(tmp_path)
    with pytest.raises(MigrationError, match=r"does not know: \[2\]"):
        await migrate(pg_dsn, older)
    rows = await fetch(pg_dsn, "SELECT version FROM schema_migrations ORDER BY 1")
    assert [r["version"] for r in rows] == [1, 2]


async def test_a_failing_migration_is_rolled_back_and_can_be_fixed(
    pg_dsn: str, tmp_path: Path
) -> None:
    d = _mig_dir(
        tmp_path,
        {"0002_half.sql": "CREATE TABLE half_done (id int);\nSELECT * FROM no_such_table;"},
    )
    with pytest.raises(asyncpg.UndefinedTableError):
        await asyncio.wait_for(migrate(pg_dsn, d), 10)
    # 0001 stays applied, 0002 left no trace (its own transaction)
    assert "half_done" not in await _tables(pg_dsn)
    rows = await fetch(pg_dsn, "SELECT version FROM schema_migrations")
    assert [r["version"] for r in rows] == [1]
    # the lock was released: a fixed 0002 (never applied, so it may change) goes in
    (d / "0002_half.sql").write_text("CREATE TABLE half_done (id int);")
    assert await asyncio.wait_for(migrate(pg_dsn, d), 10) == ["0002_half"]
    assert "half_done" in await _tables(pg_dsn)


def test_migration_files_must_be_named_and_numbered_without_gaps(tmp_path: Path) -> None:
    gap = _mig_dir(tmp_path, {"0003_skip.sql": "SELECT 1;"})
    with pytest.raises(MigrationError, match="without gaps"):
        load(gap)
    bad = _mig_dir(tmp_path, {"2_Bad-Name.sql": "SELECT 1;"})
    with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
        load(bad)


async def test_concurrent_migrations_apply_once(pg_dsn: str) -> None:
    expected = _names()
    results = await asyncio.wait_for(asyncio.gather(*(migrate(pg_dsn) for _ in range(3))), 30)
    assert sorted(results, key=len) == [[], [], expected]
    rows = await fetch(pg_dsn, "SELECT count(*) AS n FROM schema_migrations")
    assert rows[0]["n"] == len(expected)


def test_cli_db_migrate(pg_dsn: str) -> None:
    first = _cli(["db", "migrate"], pg_dsn)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "applied: " + ", ".join(_names())
    again = _cli(["db", "migrate"], pg_dsn)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "applied: nothing (up to date)"


# --- the durable writer -------------------------------------------------------------------


async def test_writer_stores_fills_orders_positions_and_risk(db: str, tmp_path: Path) -> None:
    w = _writer(db, tmp_path / "w.jsonl")
    w.submit(fill_rec("F1", ts=1_700_000_000.25, side=-1, liquidity="taker"))
    w.submit(order_rec("O1", "open", 1_700_000_001.5, venue_id=77))
    w.submit(position_rec("SEI/USDC", 1_700_000_002.125))
    w.submit(risk_rec("SEI/USDC", "halted", 1_700_000_003.0, reason="daily loss"))
    assert w.backlog == 4
    async with running_writer(w):
        assert await w.flush(10)
        assert w.up and w.backlog == 0 and w.written == 4
    (f,) = await fetch(db, "SELECT * FROM fills")
    assert (f["fill_id"], f["client_id"], f["market"], f["side"]) == ("F1", "c-F1", "SEI/USDC", -1)
    assert (f["price"], f["quantity"], f["fee"]) == (
        Decimal("0.4321"),
        Decimal("12.5"),
        Decimal("-0.00027"),
    )
    assert f["liquidity"] == "taker" and f["ts"] == _ts(1_700_000_000.25)
    (o,) = await fetch(db, "SELECT * FROM orders")
    assert (o["client_id"], o["side"], o["price"], o["quantity"]) == (
        "O1",
        -1,
        Decimal("0.44"),
        Decimal("25"),
    )
    assert (o["state"], o["venue_id"], o["reason"]) == ("open", 77, None)
    assert o["created_at"] == o["updated_at"] == _ts(1_700_000_001.5)
    (p,) = await fetch(db, "SELECT * FROM position_snapshots")
    assert p["market"] == "SEI/USDC" and p["ts"] == _ts(1_700_000_002.125)
    assert [p[k] for k in ("position", "avg_price", "realized", "unrealized", "fees")] == [
        Decimal("150"),
        Decimal("0.43"),
        Decimal("1.25"),
        Decimal("-0.5"),
        Decimal("-0.01"),
    ]
    assert p["net_pnl"] == Decimal("0.76")
    (r,) = await fetch(db, "SELECT * FROM risk_state")
    assert (r["market"], r["state"], r["halted"], r["reason"]) == (
        "SEI/USDC",
        "halted",
        True,
        "daily loss",
    )
    assert r["updated_at"] == _ts(1_700_000_003.0)


async def test_the_same_fill_twice_or_replayed_from_a_journal_is_stored_once(
    db: str, tmp_path: Path
) -> None:
    journal = tmp_path / "w.jsonl"
    w = _writer(db, journal)
    w.submit(fill_rec("F1"))
    w.submit(fill_rec("F1"))  # the venue reported it twice
    w.submit(fill_rec("F2"))
    async with running_writer(w):
        assert await w.flush(10)
    assert await fill_counts(db) == {"F1": 1, "F2": 1}
    # a journal from a crash that happened after the batch was committed
    write_journal(journal, [fill_rec("F1"), fill_rec("F2"), fill_rec("F3"), fill_rec("F1")])
    w2 = _writer(db, journal)
    assert w2.backlog == 4
    async with running_writer(w2):
        assert await w2.flush(10)
    assert await fill_counts(db) == {"F1": 1, "F2": 1, "F3": 1}
    assert not journal.exists()


async def test_order_upserts_keep_the_latest_state(db: str, tmp_path: Path) -> None:
    w = _writer(db, tmp_path / "w.jsonl")
    w.submit(order_rec("O1", "pending", 100.0))
    w.submit(order_rec("O2", "pending", 100.5))
    w.submit(order_rec("O1", "open", 101.0, venue_id=42))
    w.submit(order_rec("O1", "cancelled", 102.0, reason="requote"))  # venue id not repeated
    w.submit(order_rec("O2", "rejected", 103.0, reason="post-only would cross"))
    async with running_writer(w):
        assert await w.flush(10)
    rows = {r["client_id"]: r for r in await fetch(db, "SELECT * FROM orders")}
    assert set(rows) == {"O1", "O2"}
    o1 = rows["O1"]
    assert (o1["state"], o1["venue_id"], o1["reason"]) == ("cancelled", 42, "requote")
    assert (o1["created_at"], o1["updated_at"]) == (_ts(100.0), _ts(102.0))
    o2 = rows["O2"]
    assert (o2["state"], o2["venue_id"], o2["reason"]) == (
        "rejected",
        None,
        "post-only would cross",
    )
    assert (o2["created_at"], o2["updated_at"]) == (_ts(100.5), _ts(103.0))


async def test_order_state_survives_the_spill_reordering(db: str, tmp_path: Path) -> None:
    # memory holds one record: the older state stays in memory, the newer one is spilled;
    # on start the journal is replayed first, then memory
    w = _writer(db, tmp_path / "w.jsonl", memory_limit=1)
    w.submit(order_rec("O1", "open", 200.0, venue_id=5))
    w.submit(order_rec("O1", "filled", 201.0))
    assert w.spilled == 1
    async with running_writer(w):
        assert await w.flush(10)
    (o,) = await fetch(db, "SELECT state, updated_at FROM orders")
    assert o["updated_at"] == _ts(201.0)
    assert o["state"] == "filled"  # the newest state, not the one written last


async def test_memory_bound_spills_to_the_journal_and_everything_arrives(
    db: str, tmp_path: Path
) -> None:
    journal = tmp_path / "spill" / "w.jsonl"
    w = _writer(db, journal, memory_limit=10, batch_size=7)
    recs = [fill_rec(f"F{i:03d}", ts=1_700_000_000 + i) for i in range(60)]
    t0 = time.perf_counter()
    for rec in recs:
        w.submit(rec)
    assert time.perf_counter() - t0 < 0.5  # a file append per record past the bound
    assert w.spilled == 50 and w.backlog == 60
    assert _journal_records(journal) == recs[10:]  # the overflow, in order
    async with running_writer(w):
        assert await w.flush(10)
        assert w.backlog == 0
    assert await fill_counts(db) == {r["fill_id"]: 1 for r in recs}
    assert not journal.exists()
    assert not journal.with_suffix(".jsonl.replaying").exists()


async def test_a_journal_left_by_a_previous_process_is_replayed_on_start(
    db: str, tmp_path: Path
) -> None:
    journal = tmp_path / "w.jsonl"
    replaying = journal.with_suffix(".jsonl.replaying")
    # the previous process crashed while replaying ``replaying`` and had spilled more since
    write_journal(
        replaying,
        [fill_rec("A1"), fill_rec("A2"), order_rec("O1", "open", 300.0, venue_id=9)],
    )
    write_journal(
        journal,
        [
            fill_rec("B1"),
            order_rec("O1", "filled", 301.0),
            position_rec("SEI/USDC", 301.5),
            risk_rec("SEI/USDC", "reducing", 302.0, "inventory"),
        ],
    )
    w = _writer(db, journal)
    assert w.backlog == 7
    async with running_writer(w):
        assert await w.flush(10)
    assert await fill_counts(db) == {"A1": 1, "A2": 1, "B1": 1}
    (o,) = await fetch(db, "SELECT state, venue_id, updated_at FROM orders")
    assert (o["state"], o["venue_id"], o["updated_at"]) == ("filled", 9, _ts(301.0))
    assert len(await fetch(db, "SELECT 1 FROM position_snapshots")) == 1
    (r,) = await fetch(db, "SELECT state, reason FROM risk_state")
    assert (r["state"], r["reason"]) == ("reducing", "inventory")
    assert not journal.exists() and not replaying.exists()


async def test_close_with_the_database_unreachable_journals_the_leftovers(
    db: str, tmp_path: Path
) -> None:
    journal = tmp_path / "w.jsonl"
    dead = f"postgresql://flashmm@127.0.0.1:{free_port()}/postgres"
    w = _writer(dead, journal)
    w.start()
    recs = [fill_rec("L1"), order_rec("L-O", "open", 400.0), fill_rec("L2")]
    t0 = time.perf_counter()
    for rec in recs:
        w.submit(rec)
    assert time.perf_counter() - t0 < 0.05  # never waits on the database
    end = time.monotonic() + 5
    while w.failures == 0 and time.monotonic() < end:
        await asyncio.sleep(0.02)
    assert w.failures >= 1 and not w.up and w.backlog == 3
    t0 = time.perf_counter()
    await w.close(timeout_s=0.5)
    assert time.perf_counter() - t0 < 3.0
    assert _journal_records(journal) == recs
    # the next process (database back) writes them
    w2 = _writer(db, journal)
    assert w2.backlog == 3
    async with running_writer(w2):
        assert await w2.flush(10)
    assert await fill_counts(db) == {"L1": 1, "L2": 1}
    assert [r["client_id"] for r in await fetch(db, "SELECT client_id FROM orders")] == ["L-O"]
    assert not journal.exists()


async def test_malformed_records_are_dropped_and_counted_not_fatal(db: str, tmp_path: Path) -> None:
    journal = tmp_path / "w.jsonl"
    write_journal(
        journal,
        [
            "this is not JSON",
            "[1, 2, 3]",
            {"kind": "order", "client_id": "half"},  # fields missing
            fill_rec("J1"),
        ],
    )
    w = _writer(db, journal)
    before = error_count(w.name, "malformed_record")
    w.submit(fill_rec("G1"))
    w.submit({"kind": "no-such-kind", "x": 1})
    w.submit({"kind": "fill", "fill_id": "missing-fields"})
    w.submit({"fill_id": "no kind at all"})
    w.submit(fill_rec("G2"))
    async with running_writer(w):
        assert await w.flush(10)
        assert w.up
        assert error_count(w.name, "malformed_record") - before == 4
        # still alive: later records are written too
        w.submit(fill_rec("G3"))
        assert await w.flush(10)
    assert await fill_counts(db) == {"J1": 1, "G1": 1, "G2": 1, "G3": 1}
    assert await fetch(db, "SELECT 1 FROM orders") == []


async def test_a_record_the_database_rejects_does_not_block_the_writer(
    db: str, tmp_path: Path
) -> None:
    w = _writer(db, tmp_path / "w.jsonl")
    w.submit(fill_rec("OK1"))
    w.submit(fill_rec("BAD-SIDE", side=0))  # fills.side CHECK (-1, 1)
    w.submit(fill_rec("BAD-PRICE", price="not a number"))
    w.submit(fill_rec("OK2"))
    try:
        w.start()
        flushed = await w.flush(4)
    finally:
        await w.close(timeout_s=0.2)
    assert await fill_counts(db) == {"OK1": 1, "OK2": 1}
    assert flushed


_TORN_CHILD = """
import asyncio, json, os, sys, threading
from pathlib import Path
from flashmm.stores.pg.writer import DurableWriter
from tests.integration.store_helpers import fill_rec

async def main(dsn, journal):
    w = DurableWriter(dsn, Path(journal), memory_limit=1, name="torn")
    w.submit(fill_rec("MEM"))
    w.submit(fill_rec("SPILLED"))  # appended to the journal after the torn line
    w.start()
    ok = await w.flush(3)
    await w.close(timeout_s=0.5)
    print(json.dumps({"flushed": ok}))

threading.Timer(6.0, lambda: os._exit(3)).start()  # a frozen event loop cannot stop us
asyncio.run(main(sys.argv[1], sys.argv[2]))
os._exit(0)
"""


async def test_a_torn_journal_tail_loses_no_later_record(db: str, tmp_path: Path) -> None:
    journal = tmp_path / "w.jsonl"
    torn = json.dumps(fill_rec("TORN"))[:40]  # the process died mid-append
    journal.write_text(json.dumps(fill_rec("WHOLE")) + "\n" + torn)
    # in a child process with a watchdog: the failure mode freezes the event loop
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _TORN_CHILD, db, str(journal)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 3, "the writer froze its event loop (flush never returned)"
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"flushed": True}
    assert await fill_counts(db) == {"WHOLE": 1, "MEM": 1, "SPILLED": 1}


# --- the audit log ------------------------------------------------------------------------


async def _append_n(conn: asyncpg.Connection, n: int) -> list[str]:
    return [
        await audit.append(
            conn,
            actor=f"ops-{i % 3}",
            action="halt" if i % 2 else "resume",
            target="SEI/USDC",
            params={"i": i, "note": "é ünïcode", "limits": {"max": 1.5, "list": [1, None]}},
            outcome="ok",
            request_id=f"req-{i}",
        )
        for i in range(n)
    ]


async def test_audit_chain_appends_and_verifies(db: str) -> None:
    conn = await asyncpg.connect(db)
    try:
        assert await audit.verify(conn) == audit.Verification(True, 0)
        hashes = await _append_n(conn, 20)
        v = await audit.verify(conn)
        assert (v.ok, v.entries, v.first_bad_id) == (True, 20, None)
        rows = await conn.fetch("SELECT id, prev_hash, hash FROM audit_log ORDER BY id")
    finally:
        await conn.close()
    assert [r["hash"] for r in rows] == hashes and len(set(hashes)) == 20
    assert rows[0]["prev_hash"] == audit.GENESIS
    for before, row in itertools.pairwise(rows):
        assert row["prev_hash"] == before["hash"]


async def test_concurrent_audit_appends_keep_one_linear_chain(db: str) -> None:
    conns = [await asyncpg.connect(db) for _ in range(5)]
    try:
        await asyncio.wait_for(
            asyncio.gather(*(_append_n(c, 4) for c in conns)),
            30,
        )
        v = await audit.verify(conns[0])
    finally:
        for c in conns:
            await c.close()
    assert (v.ok, v.entries) == (True, 20)


async def test_audit_log_is_append_only(db: str) -> None:
    conn = await asyncpg.connect(db)
    try:
        await _append_n(conn, 3)
        before = await conn.fetch("SELECT * FROM audit_log ORDER BY id")
        for sql in (
            "UPDATE audit_log SET outcome = 'denied' WHERE id = 2",
            "DELETE FROM audit_log WHERE id = 3",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute(sql)
        assert await conn.fetch("SELECT * FROM audit_log ORDER BY id") == before
        assert (await audit.verify(conn)).ok
    finally:
        await conn.close()


async def _tamper(conn: asyncpg.Connection, sql: str, *args: Any) -> None:
    """What only a superuser can do: switch the trigger off, change history, switch it on."""
    await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update")
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update")


@pytest.mark.parametrize(
    ("how", "bad_offset", "reason"),
    [
        ("edit_outcome", 0, "content does not match"),
        ("edit_params", 0, "content does not match"),
        ("edit_ts", 0, "content does not match"),
        ("edit_and_rehash", 1, "prev_hash does not match"),
        ("delete", 1, "prev_hash does not match"),
    ],
)
async def test_audit_tampering_is_detected_at_the_right_entry(
    db: str, how: str, bad_offset: int, reason: str
) -> None:
    conn = await asyncpg.connect(db)
    try:
        await _append_n(conn, 12)
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM audit_log ORDER BY id")]
        k = ids[6]
        if how == "edit_outcome":
            await _tamper(conn, "UPDATE audit_log SET outcome = 'denied' WHERE id = $1", k)
        elif how == "edit_params":
            await _tamper(
                conn,
                """UPDATE audit_log SET params = params || '{"i": 999}'::jsonb WHERE id = $1""",
                k,
            )
        elif how == "edit_ts":
            await _tamper(
                conn, "UPDATE audit_log SET ts = ts - interval '1 microsecond' WHERE id = $1", k
            )
        elif how == "edit_and_rehash":
            # a careful forger recomputes the edited entry's own hash: the next one breaks
            r = await conn.fetchrow("SELECT * FROM audit_log WHERE id = $1", k)
            ts = r["ts"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
            h = audit.entry_hash(
                r["prev_hash"],
                ts,
                r["actor"],
                r["action"],
                r["target"],
                json.loads(r["params"]),
                "denied",
                r["request_id"],
            )
            await _tamper(
                conn, "UPDATE audit_log SET outcome = 'denied', hash = $2 WHERE id = $1", k, h
            )
        else:
            await _tamper(conn, "DELETE FROM audit_log WHERE id = $1", k)
        v = await audit.verify(conn)
    finally:
        await conn.close()
    assert not v.ok
    assert v.first_bad_id == ids[6 + bad_offset]
    assert reason in v.reason


async def test_audit_verify_accepts_untouched_entries_with_any_json_numbers(db: str) -> None:
    conn = await asyncpg.connect(db)
    try:
        await audit.append(conn, "ops", "set_limit", "SEI/USDC", {"x": 1.5}, "ok", "r1")
        await audit.append(conn, "ops", "flatten", "SEI/USDC", {"position": -0.0}, "ok", "r2")
        await audit.append(conn, "ops", "set_limit", "SEI/USDC", {"max": 1e16}, "ok", "r3")
        v = await audit.verify(conn)
    finally:
        await conn.close()
    assert (v.ok, v.entries, v.first_bad_id) == (True, 3, None)


async def test_cli_audit_verify_exit_codes(pg_dsn: str) -> None:
    mig = await asyncio.to_thread(_cli, ["db", "migrate"], pg_dsn)
    assert mig.returncode == 0, mig.stderr
    conn = await asyncpg.connect(pg_dsn)
    try:
        await _append_n(conn, 5)
        ok = await asyncio.to_thread(_cli, ["audit", "verify"], pg_dsn)
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.strip() == "audit log intact: 5 entries"
        await _tamper(conn, "UPDATE audit_log SET actor = 'someone else' WHERE id = 3")
    finally:
        await conn.close()
    broken = await asyncio.to_thread(_cli, ["audit", "verify"], pg_dsn)
    assert broken.returncode == 1
    assert "audit log BROKEN at entry id 3: content does not match its hash" in broken.stderr
