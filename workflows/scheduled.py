"""ScheduledStart: what a schedule runs for per-market singletons (key rotation, model
deployment). A Temporal schedule appends its run time to the workflow ids it starts, so a
scheduled ``RotateSigningKey`` would never collide with one an operator started through the
API. This workflow starts the real one as a child under its canonical id
(``rotate-key/<market>``, ``deploy-model/<market>``) and returns at once: if one is already
running — scheduled or not — this start is skipped, and says so."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

from workflows.types import CONTROL_QUEUE


@dataclass
class ScheduledStartInput:
    workflow: str  # workflow type, e.g. "RotateSigningKey"
    workflow_id: str  # the canonical id shared with the API and the CLI
    arg: Any  # the workflow's input
    execution_timeout_s: float = 0.0


@dataclass
class ScheduledStartResult:
    workflow_id: str
    started: bool
    run_id: str = ""
    skipped_because: str = ""


@workflow.defn(name="ScheduledStart")
class ScheduledStart:
    @workflow.run
    async def run(self, inp: ScheduledStartInput) -> ScheduledStartResult:
        timeout = timedelta(seconds=inp.execution_timeout_s) if inp.execution_timeout_s else None
        try:
            child = await workflow.start_child_workflow(
                inp.workflow,
                inp.arg,
                id=inp.workflow_id,
                task_queue=CONTROL_QUEUE,
                execution_timeout=timeout,
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
        except WorkflowAlreadyStartedError:
            workflow.logger.info("%s already running: scheduled start skipped", inp.workflow_id)
            return ScheduledStartResult(inp.workflow_id, False, "", "already running")
        return ScheduledStartResult(inp.workflow_id, True, child.first_execution_run_id or "")
