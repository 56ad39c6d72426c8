"""Backup and Restore of the platform's state, each step a retryable, idempotent activity.

Backup: dump PostgreSQL, export Redis, copy the model artifacts and the effective config
(secrets left out) into the backup store; write the manifest (sha256 and size of every
file); read every file back and verify it; apply retention; record the backup in the
``backups`` table; audit and notify. The backup id comes from the workflow id, so a retried
step (or a re-run of the same workflow id) writes into the same backup, and a backup that
is already complete is reused instead of being taken again. A failed backup is recorded,
audited and notified as failed.

Restore: verify every checksum first (a tampered or incomplete backup is refused with a
non-retryable error, before anything is touched); restore PostgreSQL, Redis and the model
artifacts into the targets; then prove it by reading back (rows per table as in the
manifest, every Redis key with its TTL, artifact checksums) and return that proof.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.backup_types import (
    BackupFile,
    BackupInput,
    BackupPart,
    BackupRecord,
    BackupResult,
    BackupSummary,
    FinalizeRequest,
    PartResult,
    RestoreInput,
    RestoreProof,
    RestoreStep,
    RetentionRequest,
    RetentionResult,
    VerifyRequest,
    backup_id_for,
)
from workflows.types import AuditEntry, Notice

with workflow.unsafe.imports_passed_through():
    from activities.backup import BackupActivities
    from activities.records import RecordActivities
    from activities.restore import RestoreActivities

__all__ = [
    "Backup",
    "BackupFile",
    "BackupInput",
    "BackupPart",
    "BackupRecord",
    "BackupResult",
    "BackupSummary",
    "FinalizeRequest",
    "PartResult",
    "Restore",
    "RestoreInput",
    "RestoreProof",
    "RestoreStep",
    "RetentionRequest",
    "RetentionResult",
    "VerifyRequest",
    "backup_id_for",
]

# errors that no retry can fix (the names are the activities' ApplicationError types)
NON_RETRYABLE = [
    "BackupCorrupt",
    "BackupNotFound",
    "InvalidBackupId",
    "StoreUnavailable",
    "RestoreNotProven",
]
LONG = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
    maximum_attempts=5,
    non_retryable_error_types=NON_RETRYABLE,
)
SHORT = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
    non_retryable_error_types=NON_RETRYABLE,
)
REPORT = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)

A = TypeVar("A")
T = TypeVar("T")
# an activity method (its class is the worker's; the workflow only names it)
Step = Callable[[Any, A], Awaitable[T]]


async def _long(activity: Step[A, T], arg: A) -> T:
    """A long step: heartbeats, retried with backoff unless the error cannot be fixed."""
    return await workflow.execute_activity_method(
        activity,
        arg,
        start_to_close_timeout=timedelta(hours=2),
        heartbeat_timeout=timedelta(seconds=60),
        retry_policy=LONG,
    )


async def _short(activity: Step[A, T], arg: A, retry: RetryPolicy = SHORT) -> T:
    return await workflow.execute_activity_method(
        activity,
        arg,
        start_to_close_timeout=timedelta(minutes=2),
        retry_policy=retry,
    )


def _cause(e: BaseException) -> str:
    inner = e.cause if isinstance(e, ActivityError) and e.cause is not None else e
    return str(inner)[:500]


@workflow.defn(name="Backup")
class Backup:
    @workflow.run
    async def run(self, inp: BackupInput) -> BackupResult:
        wf_id = workflow.info().workflow_id
        backup_id = inp.backup_id or backup_id_for(wf_id)
        started = workflow.now().isoformat()
        part = BackupPart(backup_id)
        try:
            parts: list[PartResult] = [
                await _long(step, part)
                for step in (
                    BackupActivities.backup_postgres,
                    BackupActivities.backup_redis,
                    BackupActivities.backup_models,
                    BackupActivities.backup_config,
                )
            ]
            await _short(
                BackupActivities.finalize_backup,
                FinalizeRequest(backup_id, wf_id, started, parts),
            )
            summary = await _long(BackupActivities.verify_backup, VerifyRequest(backup_id))
            retention = await _long(
                BackupActivities.apply_retention,
                RetentionRequest(
                    [backup_id], workflow.now().isoformat(), inp.keep, inp.max_age_days
                ),
            )
        except ActivityError as e:
            await self._failed(inp, backup_id, started, e)
            raise
        reused = any(p.reused for p in parts)
        tables = dict(summary.parts.get("postgres", {}).get("tables", {}))
        redis_keys = int(summary.parts.get("redis", {}).get("keys", 0))
        model_files = int(summary.parts.get("models", {}).get("files", 0))
        await _short(
            BackupActivities.record_backup,
            BackupRecord(
                backup_id,
                started,
                workflow.now().isoformat(),
                summary.location,
                "complete",
                summary.checksum,
                summary.size_bytes,
                {
                    "workflow_id": wf_id,
                    "reason": inp.reason,
                    "actor": inp.actor,
                    "files": summary.files,
                    "tables": tables,
                    "redis_keys": redis_keys,
                    "model_files": model_files,
                    "reused": reused,
                    "retention_deleted": retention.deleted,
                },
                retention.deleted,
            ),
        )
        audit_hash = await _short(
            RecordActivities.audit,
            AuditEntry(
                inp.actor,
                "backup",
                backup_id,
                {
                    "reason": inp.reason,
                    "location": summary.location,
                    "checksum": summary.checksum,
                    "deleted": retention.deleted,
                },
                "complete",
                wf_id,
            ),
        )
        text = (
            f"{summary.files} files, {summary.size_bytes / 1e6:.1f} MB, verified, at "
            f"{summary.location}" + (" (an existing complete backup, reused)" if reused else "")
        )
        if retention.deleted:
            text += f"; retention deleted {', '.join(retention.deleted)}"
        notified = await _short(
            RecordActivities.notify,
            Notice(f"Backup {backup_id} complete", text, "info", f"backup/{backup_id}"),
            REPORT,
        )
        return BackupResult(
            backup_id,
            summary.location,
            summary.checksum,
            summary.size_bytes,
            summary.files,
            reused,
            tables,
            redis_keys,
            model_files,
            retention.deleted,
            audit_hash,
            notified,
        )

    async def _failed(
        self, inp: BackupInput, backup_id: str, started: str, e: ActivityError
    ) -> None:
        """Record, audit and notify a failed backup, each best effort: the failure itself is
        what the workflow reports."""
        wf_id = workflow.info().workflow_id
        why = _cause(e)
        try:
            await _short(
                BackupActivities.record_backup,
                BackupRecord(
                    backup_id,
                    started,
                    workflow.now().isoformat(),
                    "",
                    "failed",
                    details={"workflow_id": wf_id, "reason": inp.reason, "error": why},
                ),
                REPORT,
            )
            await _short(
                RecordActivities.audit,
                AuditEntry(
                    inp.actor,
                    "backup",
                    backup_id,
                    {"reason": inp.reason, "error": why},
                    "failed",
                    wf_id,
                ),
                REPORT,
            )
        except ActivityError:
            workflow.logger.warning("could not record the failed backup %s", backup_id)
        try:
            await _short(
                RecordActivities.notify,
                Notice(f"Backup {backup_id} FAILED", why, "critical", f"backup/{backup_id}"),
                REPORT,
            )
        except ActivityError:
            workflow.logger.warning("could not notify the failed backup %s", backup_id)


@workflow.defn(name="Restore")
class Restore:
    @workflow.run
    async def run(self, inp: RestoreInput) -> RestoreProof:
        step = RestoreStep(
            inp.backup_id,
            inp.target_dsn,
            inp.target_redis_url,
            inp.target_model_dir,
            workflow.now().isoformat(),
        )
        # a tampered or incomplete backup is refused here, before anything is touched
        try:
            summary = await _long(
                BackupActivities.verify_backup,
                VerifyRequest(inp.backup_id, inp.expected_checksum),
            )
        except ActivityError as e:
            await self._report(inp, "refused", _cause(e), "critical")
            raise
        steps: dict[str, dict[str, Any]] = {}
        try:
            for name, restore in (
                ("restore_postgres", RestoreActivities.restore_postgres),
                ("restore_redis", RestoreActivities.restore_redis),
                ("restore_models", RestoreActivities.restore_models),
            ):
                steps[name] = await _long(restore, step)
            proof = await _long(RestoreActivities.prove_restore, step)
        except ActivityError as e:
            await self._report(inp, "failed", _cause(e), "critical")
            raise
        proof.steps = steps
        if not proof.ok:
            problems = "; ".join(proof.problems)[:2000]
            await self._report(inp, "unproven", problems, "critical")
            raise ApplicationError(
                f"restore of {inp.backup_id} did not read back as backed up: {problems}",
                proof,
                type="RestoreNotProven",
                non_retryable=True,
            )
        rows = sum(v[1] for v in proof.tables.values())
        proof.audit_hash = await self._report(
            inp,
            "restored",
            f"{len(proof.tables)} tables ({rows} rows), {proof.redis.get('present', 0)} Redis "
            f"keys, {proof.models.get('matching', 0)} model files read back as backed up "
            f"(backup checksum {summary.checksum[:12]})",
            "warning",
        )
        return proof

    async def _report(self, inp: RestoreInput, outcome: str, text: str, severity: str) -> str:
        """Audit (required for a successful restore, best effort otherwise) and notify."""
        wf_id = workflow.info().workflow_id
        audit_hash = ""
        try:
            audit_hash = await _short(
                RecordActivities.audit,
                AuditEntry(
                    inp.actor,
                    "restore",
                    inp.backup_id,
                    {"reason": inp.reason, "detail": text[:1000]},
                    outcome,
                    wf_id,
                ),
                SHORT if outcome == "restored" else REPORT,
            )
        except ActivityError:
            if outcome == "restored":
                raise
            workflow.logger.warning("could not audit the %s restore of %s", outcome, inp.backup_id)
        try:
            await _short(
                RecordActivities.notify,
                Notice(
                    f"Restore of {inp.backup_id}: {outcome}",
                    f"{text} (by {inp.actor}: {inp.reason or 'no reason given'})",
                    severity,
                    f"restore/{wf_id}",
                ),
                REPORT,
            )
        except ActivityError:
            workflow.logger.warning("could not notify the %s restore of %s", outcome, inp.backup_id)
        return audit_hash
