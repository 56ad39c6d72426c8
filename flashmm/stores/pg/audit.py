"""The tamper-evident audit log: append-only rows, each carrying the SHA-256 of its content
and of the entry before it, so any edit, deletion or reordering breaks the chain.
``verify`` walks the chain and reports the first entry that does not fit.

Every row is bounded: text fields and the params beyond their limits are truncated here,
before hashing, with a marker (the params keep their original size and SHA-256), so a huge
request cannot bloat the log or be refused by the database's ceilings (migration 0003).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

GENESIS = "0" * 64
_LOCK = 0x415544  # serialises appenders so the chain stays linear
MAX_TEXT_BYTES = 1024  # actor, action, target, request_id
MAX_OUTCOME_BYTES = 4096
MAX_PARAMS_BYTES = 16384
PREVIEW_BYTES = 4096
TRUNCATED = "…[truncated]"


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, marked when it was cut."""
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return text
    keep = limit - len(TRUNCATED.encode())
    return raw[:keep].decode("utf-8", "ignore") + TRUNCATED


def bound_params(params: dict[str, Any], limit: int = MAX_PARAMS_BYTES) -> dict[str, Any]:
    """``params`` as they are when their JSON fits ``limit`` bytes; else a marker with the
    original size and SHA-256 and the start of the JSON."""
    text = json.dumps(params, sort_keys=True)
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return params
    return {
        "_truncated": True,
        "_bytes": len(raw),
        "_sha256": hashlib.sha256(raw).hexdigest(),
        "_preview": clip(text, PREVIEW_BYTES),
    }


def entry_hash(
    prev_hash: str,
    ts: str,
    actor: str,
    action: str,
    target: str,
    params: dict[str, Any],
    outcome: str,
    request_id: str,
) -> str:
    body = json.dumps(
        [prev_hash, ts, actor, action, target, params, outcome, request_id],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    entries: int
    first_bad_id: int | None = None
    reason: str = ""


async def append(
    conn: asyncpg.Connection,
    actor: str,
    action: str,
    target: str,
    params: dict[str, Any],
    outcome: str,
    request_id: str,
) -> str:
    """Append one entry (in its own transaction); returns its hash."""
    ts = datetime.fromtimestamp(time.time(), UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
    actor, action = clip(actor, MAX_TEXT_BYTES), clip(action, MAX_TEXT_BYTES)
    target, request_id = clip(target, MAX_TEXT_BYTES), clip(request_id, MAX_TEXT_BYTES)
    outcome = clip(outcome, MAX_OUTCOME_BYTES)
    params = bound_params(params)
    # hash the params exactly as jsonb will hand them back (-0.0, 1e16, key order...)
    params = json.loads(
        await conn.fetchval("SELECT $1::jsonb::text", json.dumps(params, sort_keys=True))
    )
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        prev = await conn.fetchval("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
        prev = prev or GENESIS
        h = entry_hash(prev, ts, actor, action, target, params, outcome, request_id)
        await conn.execute(
            """INSERT INTO audit_log (ts, actor, action, target, params, outcome, request_id,
                                      prev_hash, hash)
               VALUES ($1::text::timestamptz, $2, $3, $4, $5::jsonb, $6, $7, $8, $9)""",
            ts,
            actor,
            action,
            target,
            json.dumps(params, sort_keys=True),
            outcome,
            request_id,
            prev,
            h,
        )
    return h


async def verify(conn: asyncpg.Connection) -> Verification:
    """Recompute every hash in id order."""
    prev = GENESIS
    n = 0
    async with conn.transaction():
        async for r in conn.cursor(
            "SELECT id, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') AS ts, "
            "actor, action, target, params::text AS params, outcome, request_id, prev_hash, "
            "hash FROM audit_log ORDER BY id"
        ):
            n += 1
            if r["prev_hash"] != prev:
                return Verification(False, n, r["id"], "prev_hash does not match the entry before")
            ts = r["ts"] + "+00:00"
            h = entry_hash(
                prev,
                ts,
                r["actor"],
                r["action"],
                r["target"],
                json.loads(r["params"]),
                r["outcome"],
                r["request_id"],
            )
            if h != r["hash"]:
                return Verification(False, n, r["id"], "content does not match its hash")
            prev = r["hash"]
    return Verification(True, n)
