"""Backup and Restore with the real activities against real PostgreSQL and Redis, in a
Temporal dev server: rows, keys and model files backed up, wiped, restored and read back
identical; a tampered backup refused before anything is touched; retention keeping N; a
re-run reusing the complete backup; the long steps heartbeating."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.backup import BackupActivities
from activities.records import RecordActivities
from flashmm.backup import redisdump
from flashmm.backup.config import BackupSettings
from flashmm.backup.store import LocalStore
from flashmm.config import Settings, load_settings
from flashmm.stores.pg import audit
from flashmm.stores.pg.migrate import migrate
from tests.workflows.conftest import _dev
from workflows.backup import Backup, BackupInput, BackupPart, Restore, RestoreInput
from workflows.starters import start_backup, start_restore
from workflows.types import CONTROL_QUEUE

KEYS_WITH_TTL = {b"orderbook:SEI/USDC": 60_000, b"predictions:SEI/USDC": 300_000}


@pytest_asyncio.fixture
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A Temporal dev server (the one ``tests/workflows`` uses), for this test alone."""
    env = await _dev()
    try:
        yield env
    finally:
        await env.shutdown()


@dataclass
class Rig:
    settings: Settings
    cfg: BackupSettings
    store: LocalStore
    model_dir: Path
    dsn: str
    redis_url: str


@pytest.fixture
def rig(tmp_path: Path, pg_dsn: str, redis_url: str) -> Rig:
    model = tmp_path / "model"
    (model / "meta").mkdir(parents=True)
    (model / "model.onnx").write_bytes(os.urandom(200_000))
    (model / "meta" / "schema.json").write_text('{"features": ["mid", "imbalance"]}')
    settings = load_settings(
        stores={"postgres_dsn": pg_dsn, "redis_url": redis_url},
        ml={"model_path": str(model)},
    )
    cfg = BackupSettings(dir=str(tmp_path / "backups"), keep=2, heartbeat_s=0.05)
    return Rig(settings, cfg, LocalStore(cfg.dir), model, pg_dsn, redis_url)


async def _seed(r: Rig) -> None:
    await migrate(r.dsn)
    conn = await asyncpg.connect(r.dsn)
    try:
        now = datetime(2024, 5, 1, 12, tzinfo=UTC)
        for i in range(3):
            await conn.execute(
                "INSERT INTO orders VALUES ($1, 'SEI/USDC', $2, $3, $4, 'open', $5, NULL, $6, $6)",
                f"c{i}",
                1 if i % 2 else -1,
                Decimal("0.5012") + i,
                Decimal("100"),
                1000 + i,
                now + timedelta(seconds=i),
            )
        await conn.execute(
            "INSERT INTO fills VALUES ('f1', 'c1', 'SEI/USDC', 1, 0.5, 10, -0.01, 'maker', $1, $1)",
            now,
        )
        await conn.execute(
            "INSERT INTO daily_pnl VALUES ('SEI/USDC', '2024-05-01', 1.25, 1, 5, $1::jsonb)",
            '{"note": "ünïcode ✓", "n": [1, 2]}',
        )
        await conn.execute(
            "INSERT INTO risk_state VALUES ('SEI/USDC', 'halted', true, 'drill', $1)", now
        )
        for i in range(2):
            await audit.append(conn, "alice", "halt", "SEI/USDC", {"i": i}, "ok", f"req-{i}")
    finally:
        await conn.close()
    red = aioredis.Redis.from_url(r.redis_url)
    try:
        await red.hset(b"orderbook:SEI/USDC", mapping={"seq": 7, "bids_json": "[[0.5, 10]]"})
        await red.pexpire(b"orderbook:SEI/USDC", KEYS_WITH_TTL[b"orderbook:SEI/USDC"])
        await red.rpush(b"predictions:SEI/USDC", b"p1", b"p2")
        await red.pexpire(b"predictions:SEI/USDC", KEYS_WITH_TTL[b"predictions:SEI/USDC"])
        await red.set(b"positions:SEI/USDC", b"12.5")
        await red.sadd(b"markets", b"SEI/USDC", b"ATOM/USDC")
        await red.zadd(b"leaderboard", {b"a": 1.5, b"b": -2})
        await red.xadd(b"events:SEI/USDC", {b"kind": b"fill", b"px": b"0.5"})
        await red.set(b"\xff\x00binary-key", os.urandom(64))
    finally:
        await redisdump.close(red)


async def _tables(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    conn = await asyncpg.connect(dsn)
    try:
        names = [
            r["tablename"]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
        return {
            n: [tuple(row) for row in await conn.fetch(f'SELECT * FROM "{n}" ORDER BY 1')]
            for n in names
        }
    finally:
        await conn.close()


async def _value(red: aioredis.Redis, key: bytes) -> Any:
    """The value by type (not DUMP: a set's DUMP depends on its hash table's order)."""
    kind = await red.type(key)
    if kind == b"string":
        return await red.get(key)
    if kind == b"hash":
        return await red.hgetall(key)
    if kind == b"list":
        return await red.lrange(key, 0, -1)
    if kind == b"set":
        return await red.smembers(key)
    if kind == b"zset":
        return await red.zrange(key, 0, -1, withscores=True)
    if kind == b"stream":
        return await red.xrange(key)
    raise AssertionError(f"unexpected type {kind!r}")


async def _redis(url: str) -> dict[bytes, tuple[Any, int]]:
    red = aioredis.Redis.from_url(url)
    try:
        keys = [k if isinstance(k, bytes) else k.encode() for k in await red.keys("*")]
        return {k: (await _value(red, k), await red.pttl(k)) for k in keys}
    finally:
        await redisdump.close(red)


def _files(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in d.rglob("*") if p.is_file()}


@asynccontextmanager
async def control(env: WorkflowEnvironment, r: Rig) -> AsyncIterator[BackupActivities]:
    acts = BackupActivities(r.settings, r.cfg)
    records = RecordActivities(r.settings)
    async with Worker(
        env.client,
        task_queue=CONTROL_QUEUE,
        workflows=[Backup, Restore],
        activities=[*acts.activities(), records.audit, records.notify],
    ):
        yield acts


async def _wipe(r: Rig) -> None:
    conn = await asyncpg.connect(r.dsn)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()
    red = aioredis.Redis.from_url(r.redis_url)
    try:
        await red.flushdb()
    finally:
        await redisdump.close(red)
    shutil.rmtree(r.model_dir)


async def test_backup_wipe_restore_reads_back_identical(
    dev_env: WorkflowEnvironment, rig: Rig
) -> None:
    await _seed(rig)
    rows, keys, files = await _tables(rig.dsn), await _redis(rig.redis_url), _files(rig.model_dir)
    async with control(dev_env, rig):
        res = await (await start_backup(dev_env.client, BackupInput("drill"), "bk-e2e")).result()
        recorded = await _tables(rig.dsn)
        await _wipe(rig)
        assert await _tables(rig.dsn) == {} and await _redis(rig.redis_url) == {}
        proof = await (await start_restore(dev_env.client, RestoreInput("bk-e2e"))).result()
        after = await _tables(rig.dsn)
    # the backup: what it holds, verified, recorded
    assert res.tables["public.orders"] == 3 and res.tables["public.audit_log"] == 2
    assert res.redis_keys == len(keys) == 7 and res.model_files == 2 and not res.reused
    (row,) = recorded["backups"]
    assert row[0] == "bk-e2e" and row[4] == res.checksum and row[6] == "complete"
    assert set(os.listdir(rig.cfg.dir)) == {"bk-e2e", ".staging"}
    assert not list(Path(rig.cfg.dir, ".staging").iterdir())  # staging cleaned up
    # the proof the workflow returned
    assert proof.ok and not proof.problems
    assert all(want == got for want, got in proof.tables.values())
    assert proof.tables["public.orders"] == [3, 3]
    assert proof.redis["present"] == proof.redis["ttl_ok"] == proof.redis["expected"] == 7
    assert proof.models == {"expected": 2, "matching": 2, "mismatched": []}
    # and read back here, independently: every row of every table as it was when backed up
    # (the restore's own audit entry is appended after the dump's rows)
    assert {t: v for t, v in after.items() if t != "audit_log"} == {
        t: v for t, v in rows.items() if t != "audit_log"
    }
    assert after["audit_log"][:-1] == rows["audit_log"]
    assert after["audit_log"][-1][3] == "restore"
    restored = await _redis(rig.redis_url)
    assert restored.keys() == keys.keys()
    for k, (value, pttl) in keys.items():
        assert restored[k][0] == value, k
        if k in KEYS_WITH_TTL:
            assert 0 < restored[k][1] <= pttl, k
        else:
            assert restored[k][1] == -1, k
    assert _files(rig.model_dir) == files


async def test_a_tampered_backup_is_refused(dev_env: WorkflowEnvironment, rig: Rig) -> None:
    await _seed(rig)
    async with control(dev_env, rig):
        await (await start_backup(dev_env.client, workflow_id="bk-t")).result()
        conn = await asyncpg.connect(rig.dsn)
        try:  # written after the backup: a restore would remove it
            await conn.execute(
                "INSERT INTO risk_state VALUES ('ATOM/USDC', 'active', false, '', now())"
            )
        finally:
            await conn.close()
        dump = Path(rig.cfg.dir, "bk-t", "postgres.dump")
        data = bytearray(dump.read_bytes())
        data[len(data) // 2] ^= 0x01
        dump.write_bytes(bytes(data))
        handle = await start_restore(dev_env.client, RestoreInput("bk-t", reason="drill"))
        with pytest.raises(WorkflowFailureError) as ei:
            await handle.result()
        attempts = {
            e.activity_task_started_event_attributes.attempt
            for e in (await handle.fetch_history()).events
            if e.HasField("activity_task_started_event_attributes")
        }
        scheduled = [
            e.activity_task_scheduled_event_attributes.activity_type.name
            for e in (await handle.fetch_history()).events
            if e.HasField("activity_task_scheduled_event_attributes")
        ]
    cause = ei.value.cause
    assert isinstance(cause, ActivityError) and isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == "BackupCorrupt" and "postgres.dump" in cause.cause.message
    assert scheduled == ["verify_backup", "audit", "notify"] and attempts == {1}
    tables = await _tables(rig.dsn)
    assert ("ATOM/USDC", "active") in [(r[0], r[1]) for r in tables["risk_state"]]
    assert tables["audit_log"][-1][3] == "restore" and tables["audit_log"][-1][6] == "refused"


async def test_retention_keeps_n_and_a_rerun_reuses_the_backup(
    dev_env: WorkflowEnvironment, rig: Rig
) -> None:
    await _seed(rig)
    async with control(dev_env, rig):
        results = [
            await (await start_backup(dev_env.client, workflow_id=f"bk-{i}")).result()
            for i in range(3)
        ]
        dump = Path(rig.cfg.dir, "bk-2", "postgres.dump")
        inode = dump.stat().st_ino, dump.stat().st_mtime_ns
        again = await (await start_backup(dev_env.client, workflow_id="bk-2")).result()
        conn = await asyncpg.connect(rig.dsn)
        try:
            status = dict(await conn.fetch("SELECT id, status FROM backups"))
        finally:
            await conn.close()
    assert [r.deleted for r in results] == [[], [], ["bk-0"]]
    assert rig.store.backup_ids() == ["bk-1", "bk-2"]  # keep = 2
    assert status == {"bk-0": "deleted", "bk-1": "complete", "bk-2": "complete"}
    # the same workflow id again: the complete backup is reused, not taken a second time
    assert again.reused and again.checksum == results[2].checksum
    assert (dump.stat().st_ino, dump.stat().st_mtime_ns) == inode


async def test_steps_heartbeat_and_a_retried_step_writes_once(rig: Rig) -> None:
    await _seed(rig)
    acts = BackupActivities(rig.settings, rig.cfg)
    beats: list[Any] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *d: beats.append(d)
    first = await env.run(acts.backup_postgres, BackupPart("bk-a"))
    second = await env.run(acts.backup_postgres, BackupPart("bk-a"))  # a retry
    assert beats and any("pg_dump" in str(b) for b in beats)
    # pg_dump -Fc embeds its start time, so the retry's file differs; what matters is that
    # it replaced the first, whole: one file, the one the retry reported
    assert [p.name for p in Path(rig.cfg.dir, "bk-a").iterdir()] == ["postgres.dump"]
    (f,) = second.files
    assert rig.store.checksum("bk-a", "postgres.dump") == (f.sha256, f.size)
    assert first.meta["tables"] == second.meta["tables"]
    assert first.meta["tables"]["public.orders"] == 3
