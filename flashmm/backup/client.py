"""Starting Backup and Restore from a client (the CLI, the API, an operator's script)."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from workflows.backup import BackupInput, BackupResult, RestoreInput, RestoreProof
from workflows.types import CONTROL_QUEUE


def manual_backup_id(now: datetime | None = None) -> str:
    """A fresh workflow id (and so backup id) for a backup started by hand."""
    return f"backup-{(now or datetime.now(UTC)):%Y%m%dT%H%M%SZ}"


async def start_backup(
    client: Client, inp: BackupInput | None = None, workflow_id: str | None = None
) -> WorkflowHandle[object, BackupResult]:
    """Start a backup; a second start with the same id while it runs joins that run, and a
    later run with the id of a complete backup reuses it."""
    handle: WorkflowHandle[object, BackupResult] = await client.start_workflow(
        "Backup",
        inp or BackupInput(),
        id=workflow_id or manual_backup_id(),
        task_queue=CONTROL_QUEUE,
        result_type=BackupResult,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    return handle


async def start_restore(client: Client, inp: RestoreInput) -> WorkflowHandle[object, RestoreProof]:
    """Start a restore of one backup; two starts at once join the same run."""
    handle: WorkflowHandle[object, RestoreProof] = await client.start_workflow(
        "Restore",
        inp,
        id=f"restore/{inp.backup_id}",
        task_queue=CONTROL_QUEUE,
        result_type=RestoreProof,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    return handle
