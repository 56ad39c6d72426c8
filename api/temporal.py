"""Starting and driving workflows for the API: every start is recorded (who, which request)
so ``/v1/workflows`` can show the status of anything the API started, and Temporal's
refusals become clear HTTP errors."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any

from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import FailureError
from temporalio.service import RPCError, RPCStatusCode

from api.auth.store import Principal
from api.context import AppContext
from api.errors import ApiError
from api.models import WorkflowRef
from api.rows import jsonable
from workflows.types import CONTROL_QUEUE


async def start(
    c: AppContext,
    workflow_type: str,
    arg: Any,
    workflow_id: str,
    principal: Principal,
    request_id: str,
    join_running: bool = False,
) -> WorkflowRef:
    client = await c.temporal()
    policy = (
        WorkflowIDConflictPolicy.USE_EXISTING if join_running else WorkflowIDConflictPolicy.FAIL
    )
    try:
        handle = await c.temporal_call(
            client.start_workflow(
                workflow_type,
                arg,
                id=workflow_id,
                task_queue=CONTROL_QUEUE,
                id_conflict_policy=policy,
            )
        )
    except RPCError as e:
        if e.status == RPCStatusCode.ALREADY_EXISTS:
            raise ApiError(409, f"workflow {workflow_id} is already running") from None
        raise
    await record(c, workflow_id, workflow_type, principal.actor, request_id)
    return WorkflowRef(
        workflow_id=workflow_id, run_id=handle.result_run_id, workflow_type=workflow_type
    )


async def record(
    c: AppContext, workflow_id: str, workflow_type: str, actor: str, request_id: str
) -> None:
    await c.pool.execute(
        "INSERT INTO api_workflows (workflow_id, workflow_type, started_by, request_id) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (workflow_id) DO NOTHING",
        workflow_id,
        workflow_type,
        actor,
        request_id,
    )


async def update(c: AppContext, workflow_id: str, name: str, arg: Any) -> Any:
    """Run an Update; a validator's refusal is a 409 with its reason."""
    from api.market_views import forget
    from workflows.types import lifecycle_id

    client = await c.temporal()
    handle = client.get_workflow_handle(workflow_id)
    try:
        out = await c.temporal_call(handle.execute_update(name, arg))
    except WorkflowUpdateFailedError as e:
        raise ApiError(409, refusal(e)) from None
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(404, f"no running workflow {workflow_id}") from None
        if e.status in (RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.FAILED_PRECONDITION):
            raise ApiError(409, e.message) from None
        raise
    finally:
        symbol = workflow_id.removeprefix(lifecycle_id(""))
        if symbol != workflow_id:  # a market's lifecycle: its cached view is now stale
            forget(c, symbol)
    return jsonable(asdict(out)) if is_dataclass(out) and not isinstance(out, type) else out


def refusal(e: BaseException) -> str:
    """The reason at the bottom of a failure chain (a validator's message, or the hot path's
    answer inside "Activity task failed"), not the wrapper's."""
    why = str(e)
    cause: BaseException | None = e.cause if isinstance(e, WorkflowUpdateFailedError) else e
    while cause is not None:
        if isinstance(cause, FailureError):  # the innermost message wins
            why = cause.message or why
        cause = cause.__cause__
    return why[:500]


async def describe(c: AppContext, workflow_id: str) -> dict[str, Any]:
    client = await c.temporal()
    handle = client.get_workflow_handle(workflow_id)
    try:
        d = await c.temporal_call(handle.describe())
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(404, f"no workflow {workflow_id}") from None
        raise
    out: dict[str, Any] = {
        "workflow_id": workflow_id,
        "run_id": d.run_id,
        "workflow_type": d.workflow_type,
        "status": d.status.name if d.status else "UNKNOWN",
        "start_time": d.start_time.isoformat(),
        "close_time": d.close_time.isoformat() if d.close_time else None,
    }
    if d.status == WorkflowExecutionStatus.COMPLETED:
        result = await c.temporal_call(handle.result())
        out["result"] = jsonable(result)
    elif d.status == WorkflowExecutionStatus.FAILED:
        try:
            await c.temporal_call(handle.result())
        except Exception as e:  # the failure is the answer here
            out["failure"] = str(getattr(e, "cause", None) or e)
    return out
