"""Anchors of the audit chain outside PostgreSQL.

The hash chain shows an edit to anyone who does not also recompute it; the database's owner
could recompute it, or delete the newest entries. So the head of the chain (the last id and
its hash) is written, at least every minute, where that owner cannot reach: Redis (the
latest under ``audit:anchor:<database>`` and a capped history under ``...:history``), the
Prometheus gauge ``flashmm_audit_anchor_id``, a structured log line, and the backup
manifest. ``check`` compares the database with the anchors: an anchored id that is gone
(truncation) or whose hash changed (a rewrite, even with the chain recomputed) is reported.

``anchor_loop`` runs in the operator API (``api/app.py``), which holds PostgreSQL and Redis.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from flashmm.telemetry import AUDIT_ANCHOR_ID, AUDIT_ANCHOR_MISMATCH, AUDIT_ANCHOR_TS

log = logging.getLogger(__name__)

KEY = "audit:anchor"
HISTORY_LEN = 20_160  # two weeks at one changed head a minute
INTERVAL_S = 30.0

ANCHOR_ID, ANCHOR_TS, ANCHOR_MISMATCH = AUDIT_ANCHOR_ID, AUDIT_ANCHOR_TS, AUDIT_ANCHOR_MISMATCH


@dataclass(frozen=True, slots=True)
class Anchor:
    id: int
    hash: str
    ts: float

    def to_json(self) -> str:
        return json.dumps({"id": self.id, "hash": self.hash, "ts": self.ts})

    @classmethod
    def from_json(cls, raw: bytes | str) -> Anchor:
        d = json.loads(raw)
        return cls(int(d["id"]), str(d["hash"]), float(d["ts"]))


@dataclass(frozen=True, slots=True)
class AnchorCheck:
    ok: bool
    anchors: int
    reason: str = ""
    bad_id: int | None = None


def keys(database: str) -> tuple[str, str]:
    """The Redis keys of one database's anchors: the latest, and the history (newest first)."""
    return f"{KEY}:{database}", f"{KEY}:{database}:history"


async def head(conn: asyncpg.Connection) -> tuple[str, Anchor | None]:
    """The database's name and the chain's last entry (None while the log is empty)."""
    row = await conn.fetchrow(
        "SELECT current_database() AS db, a.id, a.hash FROM (SELECT 1) one "
        "LEFT JOIN LATERAL (SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1) a ON true"
    )
    if row["id"] is None:
        return row["db"], None
    return row["db"], Anchor(int(row["id"]), row["hash"], time.time())


async def load(r: aioredis.Redis, database: str) -> list[Anchor]:
    """Every anchor kept for ``database``, the latest included."""
    latest, history = keys(database)
    raw = [await r.get(latest), *await r.lrange(history, 0, -1)]
    return [Anchor.from_json(x) for x in raw if x]


async def check(conn: asyncpg.Connection, anchors: list[Anchor]) -> AnchorCheck:
    """Each anchored entry must still be in the log with the hash it had."""
    if not anchors:
        return AnchorCheck(True, 0)
    ids = sorted({a.id for a in anchors})
    stored = {
        r["id"]: r["hash"]
        for r in await conn.fetch("SELECT id, hash FROM audit_log WHERE id = ANY($1)", ids)
    }
    last = await conn.fetchval("SELECT max(id) FROM audit_log")
    for a in sorted(anchors, key=lambda a: a.id):
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(a.ts))
        if a.id not in stored:
            gone = last is None or a.id > last
            why = f"the log ends at id {last} (truncated)" if gone else "it was deleted"
            return AnchorCheck(
                False, len(anchors), f"entry id {a.id}, anchored at {when}, is missing: {why}", a.id
            )
        if stored[a.id] != a.hash:
            return AnchorCheck(
                False,
                len(anchors),
                f"entry id {a.id} no longer has the hash anchored at {when} (rewritten)",
                a.id,
            )
    return AnchorCheck(True, len(anchors))


async def anchor_once(
    conn: asyncpg.Connection, r: aioredis.Redis, history_len: int = HISTORY_LEN
) -> Anchor | None:
    """Anchor the chain's head; first check the last anchor still holds (an alert if not).
    A head that did not move since the last anchor only refreshes its time."""
    database, now = await head(conn)
    latest_key, history_key = keys(database)
    raw = await r.get(latest_key)
    prev = Anchor.from_json(raw) if raw else None
    if prev is not None:
        verdict = await check(conn, [prev])
        ANCHOR_MISMATCH.set(0 if verdict.ok else 1)
        if not verdict.ok:
            log.error(
                "audit log does not match its anchor: %s",
                verdict.reason,
                extra={"audit_anchor_id": prev.id, "database": database},
            )
    if now is None:
        return None
    moved = prev is None or prev.id != now.id or prev.hash != now.hash
    pipe = r.pipeline(transaction=True)
    pipe.set(latest_key, now.to_json())
    if moved:
        pipe.lpush(history_key, now.to_json())
        pipe.ltrim(history_key, 0, history_len - 1)
    await pipe.execute()
    ANCHOR_ID.set(now.id)
    ANCHOR_TS.set(now.ts)
    log.info(
        "audit anchor",
        extra={"audit_anchor_id": now.id, "audit_anchor_hash": now.hash, "database": database},
    )
    return now


async def anchor_loop(pool: Any, r: aioredis.Redis, interval_s: float = INTERVAL_S) -> None:
    """``anchor_once`` every ``interval_s`` for as long as the process runs; a store that is
    down is retried at the next tick (the gauge's timestamp shows how old the anchor is)."""
    while True:
        try:
            async with pool.acquire() as conn:
                await anchor_once(conn, r)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # PostgreSQL or Redis down: next tick
            log.warning("audit anchor skipped: %s", type(e).__name__)
        await asyncio.sleep(interval_s)
