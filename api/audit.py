"""Audit entries for the API's mutating calls, in the tamper-evident audit log.

An entry that cannot be written (PostgreSQL down) goes to an append-only spool file and is
moved into the log, in order, when PostgreSQL is back: no entry is lost, and an emergency
stop never waits on the audit log.

Every entry is made storable before it is written or spooled (NUL and lone surrogates
escaped, numbers PostgreSQL cannot hold written as text, nesting bounded: see
``flashmm.inputs``), secrets are redacted, and its size is bounded: parameters over
``MAX_PARAMS_CHARS`` of JSON are replaced by their head and a ``_truncated`` marker, text
fields are cut with a note. An entry PostgreSQL still refuses for a permanent reason (bad
data, not an outage) is moved to a quarantine file beside the spool, with a log line and
``flashmm_api_audit_quarantined_total``, and never blocks the entries behind it.
``stats()`` reports the spool's depth, its oldest entry's age and the quarantine count for
``/ready``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from flashmm import telemetry
from flashmm.inputs import short, storable_json
from flashmm.redact import redact
from flashmm.stores.pg import audit

log = logging.getLogger(__name__)

MAX_PARAMS_CHARS = 16_384
MAX_OUTCOME_CHARS = 1_000
MAX_FIELD_CHARS = 256  # actor, action, target, request id
_SPOOLED_AT = "_spooled_at"
_FIELDS = ("actor", "action", "target", "params", "outcome", "request_id")

QUARANTINED = telemetry.AUDIT_QUARANTINED
SPOOL_DEPTH = telemetry.AUDIT_SPOOL_ENTRIES
SPOOL_AGE = telemetry.AUDIT_SPOOL_AGE


def permanent(e: BaseException) -> bool:
    """Whether writing the entry failed because of the entry itself (retrying cannot help),
    not because PostgreSQL is unreachable."""
    return isinstance(
        e,
        asyncpg.DataError
        | asyncpg.IntegrityConstraintViolationError
        | asyncpg.ProgramLimitExceededError
        | ValueError  # client-side: text that cannot be encoded, bad JSON in the spool
        | TypeError
        | KeyError
        | RecursionError,
    )


def bounded_entry(
    actor: str, action: str, target: str, params: Any, outcome: str, request_id: str
) -> dict[str, Any]:
    """The entry as it is stored: storable, redacted, bounded in size."""
    p = redact(storable_json(params))
    text = json.dumps(p, sort_keys=True, allow_nan=False)
    if len(text) > MAX_PARAMS_CHARS:
        p = {"_truncated": True, "_chars": len(text), "_head": text[: MAX_PARAMS_CHARS // 2]}
    return {
        "actor": short(str(actor), MAX_FIELD_CHARS),
        "action": short(str(action), MAX_FIELD_CHARS),
        "target": short(str(target), MAX_FIELD_CHARS),
        "params": p,
        "outcome": short(str(outcome), MAX_OUTCOME_CHARS),
        "request_id": short(str(request_id), MAX_FIELD_CHARS),
    }


@dataclass(frozen=True)
class SpoolStats:
    depth: int
    oldest_age_s: float | None
    quarantined: int
    stuck: bool


class AuditSink:
    def __init__(self, pool: asyncpg.Pool, spool: Path, stuck_after_s: float = 60.0) -> None:
        self.pool = pool
        self.spool = spool
        self.quarantine = spool.with_name(spool.stem + ".quarantine.jsonl")
        self.stuck_after_s = stuck_after_s
        self._lock = asyncio.Lock()
        self.spooled = 0

    async def record(
        self,
        actor: str,
        action: str,
        target: str,
        params: dict[str, Any],
        outcome: str,
        request_id: str,
    ) -> str:
        """The entry's hash, "spooled" when it waits for PostgreSQL, or "quarantined" when
        PostgreSQL refused it for good."""
        entry = bounded_entry(actor, action, target, params, outcome, request_id)
        async with self._lock:
            if not self.spool.exists():
                try:
                    return await asyncio.wait_for(self._write(entry), 1.5)
                except Exception as e:  # never lose the entry: spool or quarantine it
                    if permanent(e):
                        self._quarantine(json.dumps(entry, sort_keys=True), e)
                        return "quarantined"
            self._append_spool(entry)
            return "spooled"

    async def _write(self, entry: dict[str, Any]) -> str:
        async with self.pool.acquire(timeout=2.0) as conn:
            return await audit.append(conn, **entry)

    async def _written(self, entry: dict[str, Any]) -> bool:
        found = await self.pool.fetchval(
            "SELECT 1 FROM audit_log WHERE request_id = $1 AND action = $2 AND actor = $3 LIMIT 1",
            entry["request_id"],
            entry["action"],
            entry["actor"],
        )
        return found is not None

    def _append_spool(self, entry: dict[str, Any]) -> None:
        self.spool.parent.mkdir(parents=True, exist_ok=True)
        with self.spool.open("a") as f:
            f.write(json.dumps({**entry, _SPOOLED_AT: time.time()}, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.spooled += 1
        log.warning("audit entry spooled: PostgreSQL unavailable", extra={"spool": str(self.spool)})

    def _quarantine(self, line: str, e: BaseException) -> None:
        self.quarantine.parent.mkdir(parents=True, exist_ok=True)
        why = f"{type(e).__name__}: {short(str(e), 300)}"
        with self.quarantine.open("a") as f:
            f.write(json.dumps({"at": time.time(), "error": why, "line": line}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        QUARANTINED.inc()
        log.error(
            "audit entry quarantined: PostgreSQL refused it (%s)",
            why,
            extra={"quarantine": str(self.quarantine)},
        )

    async def drain(self) -> int:
        """Move spooled entries into the log, oldest first; an entry refused for good goes
        to the quarantine file and the ones behind it carry on. Returns how many left the
        spool."""
        async with self._lock:
            try:
                return await self._drain()
            finally:
                self._gauges()

    async def _drain(self) -> int:
        if not self.spool.exists():
            return 0
        lines = [ln for ln in self.spool.read_text().splitlines() if ln.strip()]
        done = 0
        for ln in lines:
            try:
                entry = _entry(ln)
                if not await self._written(entry):  # a timed-out write may have landed
                    await self._write(entry)
            except Exception as e:
                if not permanent(e):  # PostgreSQL away again: keep the rest for later
                    tmp = self.spool.with_suffix(".tmp")
                    tmp.write_text("".join(x + "\n" for x in lines[done:]))
                    os.replace(tmp, self.spool)
                    return done
                self._quarantine(ln, e)
            done += 1
        self.spool.unlink()
        return done

    def _gauges(self) -> None:
        depth, oldest = self._spool_state()
        SPOOL_DEPTH.set(depth)
        SPOOL_AGE.set(0.0 if oldest is None else max(0.0, time.time() - oldest))

    def _spool_state(self) -> tuple[int, float | None]:
        """Entries in the spool and when the oldest was spooled (None: empty)."""
        try:
            with self.spool.open("rb") as f:
                first = f.readline()
                depth = (1 if first.strip() else 0) + sum(1 for ln in f if ln.strip())
                mtime = os.fstat(f.fileno()).st_mtime
        except FileNotFoundError:
            return 0, None
        if depth == 0:
            return 0, None
        oldest: float = mtime  # entries spooled before _spooled_at existed
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            oldest = float(json.loads(first)[_SPOOLED_AT])
        return depth, oldest

    def _quarantined(self) -> int:
        try:
            with self.quarantine.open("rb") as f:
                return sum(1 for ln in f if ln.strip())
        except FileNotFoundError:
            return 0

    async def stats(self) -> SpoolStats:
        def read() -> SpoolStats:
            depth, oldest = self._spool_state()
            age = None if oldest is None else round(max(0.0, time.time() - oldest), 3)
            stuck = age is not None and age > self.stuck_after_s
            return SpoolStats(depth, age, self._quarantined(), stuck)

        return await asyncio.to_thread(read)


def _entry(line: str) -> dict[str, Any]:
    """A spool line as the keyword arguments of ``audit.append`` (ValueError if not one).
    Lines spooled before entries were made storable are written as they are: one that
    PostgreSQL refuses is quarantined whole, for a person to read."""
    raw = json.loads(line)
    if not isinstance(raw, dict) or not all(k in raw for k in _FIELDS):
        raise ValueError("not an audit entry")
    entry = {k: raw[k] for k in _FIELDS}
    if not isinstance(entry["params"], dict):
        raise ValueError("params is not an object")
    for k in ("actor", "action", "target", "outcome", "request_id"):
        if not isinstance(entry[k], str):
            raise ValueError(f"{k} is not text")
    return entry
