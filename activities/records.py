"""Records the control plane keeps: the durable halt flag, the audit log, notifications."""

from __future__ import annotations

import logging
import time

import asyncpg
from temporalio import activity

from flashmm.config import Settings
from flashmm.stores.pg import audit
from flashmm.stores.pg.migrate import migrate
from workflows.types import AuditEntry, Notice

log = logging.getLogger(__name__)


class RecordActivities:
    def __init__(self, settings: Settings, notifier: object | None = None) -> None:
        self.s = settings
        self.notifier = notifier
        self._migrated = False

    async def _conn(self) -> asyncpg.Connection:
        if not self._migrated:
            await migrate(self.s.stores.postgres_dsn)
            self._migrated = True
        return await asyncpg.connect(self.s.stores.postgres_dsn, timeout=5)

    @activity.defn(name="persist_halt")
    async def persist_halt(self, market: str, reason: str) -> None:
        """The market's halted flag in PostgreSQL (idempotent upsert)."""
        conn = await self._conn()
        try:
            await conn.execute(
                """INSERT INTO risk_state (market, state, halted, reason, updated_at)
                   VALUES ($1, 'halted', true, $2, to_timestamp($3))
                   ON CONFLICT (market) DO UPDATE SET state = 'halted', halted = true,
                       reason = EXCLUDED.reason, updated_at = EXCLUDED.updated_at""",
                market,
                reason[:500],
                time.time(),
            )
        finally:
            await conn.close()

    @activity.defn(name="audit")
    async def audit(self, entry: AuditEntry) -> str:
        """Append once per request id (a retried activity finds its own entry)."""
        conn = await self._conn()
        try:
            existing = await conn.fetchval(
                "SELECT hash FROM audit_log WHERE request_id = $1 AND action = $2",
                entry.request_id,
                entry.action,
            )
            if existing:
                return str(existing)
            return await audit.append(
                conn,
                entry.actor,
                entry.action,
                entry.target,
                entry.params,
                entry.outcome,
                entry.request_id,
            )
        finally:
            await conn.close()

    @activity.defn(name="notify")
    async def notify(self, notice: Notice) -> bool:
        """Through the platform notifier when one is configured; otherwise logged only."""
        if self.notifier is None:
            log.warning(
                "notification (no channels configured): [%s] %s: %s",
                notice.severity,
                notice.title,
                notice.text,
            )
            return False
        from flashmm.notify.channels import Notification
        from flashmm.notify.config import Severity

        result = await self.notifier.notify(  # type: ignore[attr-defined]
            Notification(
                title=notice.title,
                text=notice.text,
                severity=Severity.parse(notice.severity),
                source="flashmm-control",
                dedup_key=notice.dedup_key or None,
            )
        )
        return bool(result.delivered)
