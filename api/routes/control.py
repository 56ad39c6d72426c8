"""Changing a market through its TradingLifecycle workflow: start, stop, halt, resume,
parameters, model rollback. Each answers the lifecycle's new status; a change the workflow
refuses in the market's current state is a 409 with the reason."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from api import temporal
from api.auth.roles import Permission
from api.auth.store import Principal
from api.deps import ctx, require
from api.errors import COMMON
from api.models import Reason, Strict
from workers.client import ensure_lifecycle
from workflows.types import ChangeRequest, lifecycle_id

router = APIRouter(prefix="/v1/markets", responses=COMMON, tags=["markets"])
TRADE = require(Permission.TRADE, "write")
HALT = require(Permission.HALT, "write")
MODELS = require(Permission.MODELS, "write")
REFUSED: dict[int | str, dict[str, Any]] = {
    404: COMMON[422] | {"description": "unknown market"},
    409: COMMON[422] | {"description": "refused in the market's current state"},
    503: COMMON[422] | {"description": "Temporal unreachable"},
}


class Params(Strict):
    quoting: dict[str, float | int | bool | str] | None = None
    risk: dict[str, float | int | bool | str] | None = None
    reason: str = Field("", max_length=500)


async def _change(
    request: Request, market: str, update: str, p: Principal, req: ChangeRequest
) -> dict[str, Any]:
    c = ctx(request)
    symbol = c.market(market)
    client = await c.temporal()
    await c.temporal_call(ensure_lifecycle(client, symbol))
    out: dict[str, Any] = await temporal.update(c, lifecycle_id(symbol), update, req)
    return out


@router.post("/{market}/start", name="markets.start", responses=REFUSED)
async def start(
    market: str,
    body: Reason,
    request: Request,
    p: Principal = Depends(TRADE),  # noqa: B008
) -> dict[str, Any]:
    return await _change(request, market, "start", p, ChangeRequest(p.actor, body.reason))


@router.post("/{market}/stop", name="markets.stop", responses=REFUSED)
async def stop(
    market: str,
    body: Reason,
    request: Request,
    p: Principal = Depends(TRADE),  # noqa: B008
) -> dict[str, Any]:
    return await _change(request, market, "stop", p, ChangeRequest(p.actor, body.reason))


@router.post("/{market}/halt", name="markets.halt", responses=REFUSED)
async def halt(
    market: str,
    body: Reason,
    request: Request,
    p: Principal = Depends(HALT),  # noqa: B008
) -> dict[str, Any]:
    return await _change(request, market, "halt", p, ChangeRequest(p.actor, body.reason))


@router.post("/{market}/resume", name="markets.resume", responses=REFUSED)
async def resume(
    market: str,
    body: Reason,
    request: Request,
    p: Principal = Depends(TRADE),  # noqa: B008
) -> dict[str, Any]:
    return await _change(request, market, "resume", p, ChangeRequest(p.actor, body.reason))


@router.put("/{market}/params", name="markets.set_params", responses=REFUSED)
async def set_params(
    market: str,
    body: Params,
    request: Request,
    p: Principal = Depends(TRADE),  # noqa: B008
) -> dict[str, Any]:
    params = {k: v for k, v in (("quoting", body.quoting), ("risk", body.risk)) if v}
    return await _change(
        request, market, "set_params", p, ChangeRequest(p.actor, body.reason, params)
    )


@router.post("/{market}/model/rollback", name="models.rollback", responses=REFUSED)
async def rollback_model(
    market: str,
    body: Reason,
    request: Request,
    p: Principal = Depends(MODELS),  # noqa: B008
) -> dict[str, Any]:
    return await _change(request, market, "rollback_model", p, ChangeRequest(p.actor, body.reason))
