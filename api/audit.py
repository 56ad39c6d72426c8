"""Audit entries for the API's mutating calls, in the tamper-evident audit log.

An entry that cannot be written (PostgreSQL down) goes to an append-only spool file and is
moved into the log, in order, when PostgreSQL is back: no entry is lost, and an emergency
stop never waits on the audit log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import asyncpg

from flashmm.redact import redact
from flashmm.stores.pg import audit

log = logging.getLogger(__name__)


class AuditSink:
    def __init__(self, pool: asyncpg.Pool, spool: Path) -> None:
        self.pool = pool
        self.spool = spool
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
        """The entry's hash, or "spooled" when it waits for PostgreSQL."""
        entry = {
            "actor": actor,
            "action": action,
            "target": target,
            "params": redact(params),
            "outcome": outcome,
            "request_id": request_id,
        }
        async with self._lock:
            if not self.spool.exists():
                with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
                    return await asyncio.wait_for(self._write(entry), 1.5)
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
            f.write(json.dumps(entry, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.spooled += 1
        log.warning("audit entry spooled: PostgreSQL unavailable", extra={"spool": str(self.spool)})

    async def drain(self) -> int:
        """Move spooled entries into the log, oldest first; returns how many moved."""
        async with self._lock:
            if not self.spool.exists():
                return 0
            lines = [ln for ln in self.spool.read_text().splitlines() if ln.strip()]
            moved = 0
            try:
                for ln in lines:
                    entry = json.loads(ln)
                    if not await self._written(entry):  # a timed-out write may have landed
                        await self._write(entry)
                    moved += 1
            except (OSError, asyncpg.PostgresError, TimeoutError):
                rest = lines[moved:]
                tmp = self.spool.with_suffix(".tmp")
                tmp.write_text("".join(ln + "\n" for ln in rest))
                os.replace(tmp, self.spool)
                return moved
            self.spool.unlink()
            return moved
