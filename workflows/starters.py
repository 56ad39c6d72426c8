"""Starting the platform's workflows from a client (CLI, API, workers, scripts), each with its
id scheme and conflict policy, typed by the workflow's own run method: one place to read how
a workflow is started and what a second start does."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from workflows.backup import Backup, BackupInput, BackupResult, Restore, RestoreInput, RestoreProof
from workflows.deadman import DeadmanInput, DeadmanResult, DeadmanSwitch, deadman_id
from workflows.estop import EmergencyStop
from workflows.lifecycle import TradingLifecycle
from workflows.types import (
    CONTROL_QUEUE,
    EmergencyStopInput,
    EmergencyStopResult,
    LifecycleInput,
    lifecycle_id,
)


async def ensure_lifecycle(
    client: Client, market: str, state: str = "STOPPED"
) -> WorkflowHandle[TradingLifecycle, None]:
    """Start the market's lifecycle workflow, or attach to the running one."""
    return await client.start_workflow(
        TradingLifecycle.run,
        LifecycleInput(market, state),
        id=lifecycle_id(market),
        task_queue=CONTROL_QUEUE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


async def start_emergency_stop(
    client: Client, inp: EmergencyStopInput
) -> WorkflowHandle[EmergencyStop, EmergencyStopResult]:
    """Signal-with-start: a stop for markets whose stop is still running joins that run and
    is carried out after it (never dropped); otherwise a new run starts. Each request gets
    its own id when the caller gave none."""
    if not inp.request_id:
        inp = dataclasses.replace(inp, request_id=uuid.uuid4().hex)
    return await client.start_workflow(
        EmergencyStop.run,
        inp,
        id="estop/" + "+".join(sorted(inp.markets)),
        task_queue=CONTROL_QUEUE,
        start_signal="also_stop",
        start_signal_args=[inp],
    )


async def start_deadman(
    client: Client, inp: DeadmanInput
) -> WorkflowHandle[DeadmanSwitch, DeadmanResult]:
    """One run per incident: a second start for the same incident (a restarted watcher)
    joins the running one, or finds the finished one and starts nothing."""
    wf_id = deadman_id(inp.market, inp.incarnation, inp.last_cycle_at)
    try:
        return await client.start_workflow(
            DeadmanSwitch.run,
            inp,
            id=wf_id,
            task_queue=CONTROL_QUEUE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        return client.get_workflow_handle_for(DeadmanSwitch.run, wf_id)


def manual_backup_id(now: datetime | None = None) -> str:
    """A fresh workflow id (and so backup id) for a backup started by hand."""
    return f"backup-{(now or datetime.now(UTC)):%Y%m%dT%H%M%SZ}"


async def start_backup(
    client: Client, inp: BackupInput | None = None, workflow_id: str | None = None
) -> WorkflowHandle[Backup, BackupResult]:
    """Start a backup; a second start with the same id while it runs joins that run, and a
    later run with the id of a complete backup reuses it."""
    return await client.start_workflow(
        Backup.run,
        inp or BackupInput(),
        id=workflow_id or manual_backup_id(),
        task_queue=CONTROL_QUEUE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


async def start_restore(client: Client, inp: RestoreInput) -> WorkflowHandle[Restore, RestoreProof]:
    """Start a restore of one backup; two starts at once join the same run."""
    return await client.start_workflow(
        Restore.run,
        inp,
        id=f"restore/{inp.backup_id}",
        task_queue=CONTROL_QUEUE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
