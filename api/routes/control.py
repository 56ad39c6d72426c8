"""Changing a market through its TradingLifecycle workflow: start, stop, halt, resume,
parameters, model rollback. Each answers the lifecycle's new status; a change the workflow
refuses in the market's current state is a 409 with the reason."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import Field

from api import temporal
from api.auth.roles import Permission
from api.auth.store import Principal
from api.deps import ctx, require
from api.errors import COMMON
from api.models import Reason, Strict
from flashmm.inputs import InputError
from workflows.starters import ensure_lifecycle
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
    """Run-time changes: each value must lie inside its bound (``GET /v1/risk/limits`` and
    docs/configuration.md); the configured risk limits are ceilings."""

    quoting: dict[str, Any] | None = Field(None, max_length=32)
    risk: dict[str, Any] | None = Field(None, max_length=32)
    reason: str = Field("", max_length=500)


def _within_bounds(c: Any, body: Params) -> dict[str, dict[str, Any]]:
    """The sections given, each value checked against the settings' bounds; 422 naming the
    field otherwise (nothing is sent to the market)."""
    bounds = c.settings.runtime_bounds()
    params = {k: v for k, v in (("quoting", body.quoting), ("risk", body.risk)) if v}
    if not params:
        raise RequestValidationError(
            [{"loc": ("body",), "msg": "give quoting and/or risk values", "type": "value_error"}]
        )
    for section, values in params.items():
        try:
            bounds.check(section, values)
        except InputError as e:
            raise RequestValidationError(
                [{"loc": ("body", *e.loc), "msg": e.message, "type": "value_error"}]
            ) from None
    return params


async def _change(
    request: Request, market: str, update: str, p: Principal, req: ChangeRequest
) -> dict[str, Any]:
    c = ctx(request)
    symbol = c.market(market)
    client = await c.temporal()
    await c.temporal_call(ensure_lifecycle(client, symbol))
    out: dict[str, Any] = await temporal.update(c, lifecycle_id(symbol), update, req)
    return out


def _transition(update: str) -> Callable[..., Awaitable[dict[str, Any]]]:
    """One route per lifecycle Update that takes only a reason."""

    async def route(
        market: str,
        body: Reason,
        request: Request,
        p: Principal = Depends(HALT if update == "halt" else TRADE),  # noqa: B008
    ) -> dict[str, Any]:
        return await _change(request, market, update, p, ChangeRequest(p.actor, body.reason))

    route.__name__ = update
    return route


for _update in ("start", "stop", "halt", "resume"):
    router.add_api_route(
        f"/{{market}}/{_update}",
        _transition(_update),
        methods=["POST"],
        name=f"markets.{_update}",
        responses=REFUSED,
    )


@router.put("/{market}/params", name="markets.set_params", responses=REFUSED)
async def set_params(
    market: str,
    body: Params,
    request: Request,
    p: Principal = Depends(TRADE),  # noqa: B008
) -> dict[str, Any]:
    params = _within_bounds(ctx(request), body)
    out = await _change(
        request, market, "set_params", p, ChangeRequest(p.actor, body.reason, params)
    )
    changes = (out.get("hotpath") or {}).get("detail", {}).get("changes", {})
    request.state.outcome = "applied: " + (
        "; ".join(f"{k} {v['old']} -> {v['new']}" for k, v in changes.items()) or "no change"
    )  # the audit entry keeps old and new values
    return out


@router.post("/{market}/model/rollback", name="models.rollback", responses=REFUSED)
async def rollback_model(
    market: str,
    body: Reason,
    request: Request,
    p: Principal = Depends(MODELS),  # noqa: B008
) -> dict[str, Any]:
    return await _change(request, market, "rollback_model", p, ChangeRequest(p.actor, body.reason))
