"""``POST /v1/emergency-stop``: halt the hot paths directly and start ``EmergencyStop``."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, model_validator

from api import temporal
from api.auth.roles import Permission
from api.auth.store import Principal
from api.deps import ctx, require
from api.errors import COMMON, ApiError, request_id
from api.estop import PendingStops, halt_hotpath, new_stop_id, start_workflow
from api.models import Strict
from workflows.types import EmergencyStopInput

router = APIRouter(prefix="/v1", responses=COMMON, tags=["emergency stop"])
ESTOP = require(Permission.ESTOP, "estop")


class EstopRequest(Strict):
    markets: list[str] = Field(default_factory=list, max_length=64)
    all: bool = Field(False, description="every configured market")
    reason: str = Field(min_length=1, max_length=500)
    flatten: bool = Field(False, description="also work the position off within the budget")
    loss_budget_usdc: float = Field(0.0, ge=0, le=1_000_000)

    @model_validator(mode="after")
    def _one_of(self) -> EstopRequest:
        if self.all == bool(self.markets):
            raise ValueError("give either markets or all=true")
        return self


class HaltResult(BaseModel):
    halted: bool
    detail: str


class WorkflowStatus(BaseModel):
    started: bool
    workflow_id: str | None = None
    pending: str | None = Field(None, description="postgres | spool: recorded for later")
    detail: str


class EstopResponse(BaseModel):
    request_id: str = Field(description="the request's id (X-Request-ID), as recorded")
    stop_id: str = Field(description="this stop's own id: the key of its hot-path halts")
    markets: dict[str, HaltResult]
    workflow: WorkflowStatus


@router.post(
    "/emergency-stop",
    response_model=EstopResponse,
    status_code=202,
    name="estop",
    responses={404: COMMON[422] | {"description": "unknown market"}},
)
async def emergency_stop(
    body: EstopRequest,
    request: Request,
    p: Principal = Depends(ESTOP),  # noqa: B008
) -> EstopResponse:
    c = ctx(request)
    rid = request_id(request)  # the client's: recorded, never a key
    sid = new_stop_id()
    markets = c.markets if body.all else sorted({c.market(m) for m in body.markets})
    inp = EmergencyStopInput(
        markets, body.reason, p.actor, body.flatten, body.loss_budget_usdc, request_id=sid
    )
    halts = await asyncio.gather(*(halt_hotpath(c, m, body.reason, sid) for m in markets))
    try:
        wid = await start_workflow(c, inp)
        with_wf = WorkflowStatus(started=True, workflow_id=wid, detail="EmergencyStop started")
    except Exception as e:  # any failure to start: record it, never lose the stop
        why = e.message if isinstance(e, ApiError) else f"Temporal error: {type(e).__name__}"
        where = await PendingStops(c).add(sid, inp)
        with_wf = WorkflowStatus(
            started=False,
            pending=where,
            detail=f"{why}: recorded, the workflow starts when Temporal is back",
        )
    else:
        with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
            await asyncio.wait_for(temporal.record(c, wid, "EmergencyStop", p.actor, rid), 1.5)
    results = {
        m: HaltResult(halted=h["halted"], detail=h["detail"])
        for m, h in zip(markets, halts, strict=True)
    }
    request.state.outcome = (
        "halted "
        + ",".join(m for m, h in results.items() if h.halted)
        + "; workflow "
        + (with_wf.workflow_id or f"pending ({with_wf.pending})")
    )
    return EstopResponse(request_id=rid, stop_id=sid, markets=results, workflow=with_wf)
