"""Operations through workflows: model deployment, signing keys, backups, runbooks, and the
status of any workflow the API started; the audit log (read)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field

from api import temporal
from api.auth.roles import Permission
from api.auth.store import Principal
from api.deps import ctx, require
from api.errors import COMMON, ApiError, request_id
from api.models import NAME, Page, Strict, WorkflowRef
from api.routes.trading import cursor_position
from api.rows import encode_cursor, row
from api.signing_keys import signing_keys
from flashmm.inputs import INT64_MAX, short
from workflows.backup_types import BackupInput, RestoreInput
from workflows.rotate_key_types import RotateKeyInput
from workflows.types import (
    PLANS,
    RUNBOOKS,
    Decision,
    DeployModelInput,
    RunbookInput,
    deploy_model_id,
)

router = APIRouter(prefix="/v1", responses=COMMON)
READ = require(Permission.READ)
MODELS = require(Permission.MODELS, "write")
KEYS_READ = require(Permission.KEYS)
KEYS = require(Permission.KEYS, "write")
BACKUPS_READ = require(Permission.BACKUPS)
BACKUPS = require(Permission.BACKUPS, "write")
RESTORE = require(Permission.RESTORE, "write")
RUNBOOKS_DO = require(Permission.RUNBOOKS, "write")
AUDIT = require(Permission.AUDIT)
WORKFLOW: dict[int | str, dict[str, Any]] = {
    404: COMMON[422] | {"description": "unknown market or workflow"},
    409: COMMON[422] | {"description": "already running, or refused"},
    503: COMMON[422] | {"description": "Temporal unreachable"},
}


def _wid(kind: str, *parts: str) -> str:
    """Workflow ids the API makes: no slashes, unique per request."""
    tail = "-".join(p.replace("/", "-") for p in parts)
    return f"api-{kind}-{tail}-{uuid.uuid4().hex[:8]}".replace("--", "-")


# --- models ---------------------------------------------------------------------------
class DeployRequest(Strict):
    market: str = Field(max_length=32)
    artifact_path: str = Field("", max_length=500, description="take this export (else train)")
    shadow_s: float = Field(60.0, ge=0, le=86_400)
    monitor_s: float = Field(300.0, ge=0, le=7 * 86_400)


@router.get("/models", tags=["models"], name="models.list")
async def list_models(
    request: Request,
    _: Principal = Depends(READ),  # noqa: B008
) -> list[dict[str, Any]]:
    rows = await ctx(request).pool.fetch(
        "SELECT name, version, path, schema_hash, metrics, status, created_at "
        "FROM model_registry ORDER BY created_at DESC, id DESC LIMIT 500"
    )
    return [row(r) for r in rows]


@router.post(
    "/models/deploy",
    response_model=WorkflowRef,
    status_code=202,
    tags=["models"],
    name="models.deploy",
    responses=WORKFLOW,
)
async def deploy_model(
    body: DeployRequest,
    request: Request,
    p: Principal = Depends(MODELS),  # noqa: B008
) -> WorkflowRef:
    c = ctx(request)
    symbol = c.market(body.market)
    inp = DeployModelInput(
        symbol,
        body.artifact_path,
        shadow_s=body.shadow_s,
        monitor_s=body.monitor_s,
        actor=p.actor,
    )
    # one deployment per market at a time
    wid = deploy_model_id(symbol)
    return await temporal.start(c, "DeployModel", inp, wid, p, request_id(request))


# --- keys -----------------------------------------------------------------------------
class RotateRequest(Strict):
    market: str = Field(max_length=32)
    reason: str = Field("", max_length=500)
    warm_key_ref: str = Field("", max_length=200, description="default: control.warm_key_ref")


@router.get("/keys", tags=["keys"], name="keys.list")
async def list_keys(
    request: Request,
    _: Principal = Depends(KEYS_READ),  # noqa: B008
) -> list[dict[str, Any]]:
    """The signing keys the platform uses (``api/signing_keys.py``): each market's settings
    mnemonic key, the keystore's keys and the recorded ones, with address, market and
    source. Metadata only: no mnemonic or private key ever leaves where it is kept."""
    return await signing_keys(ctx(request))


@router.post(
    "/keys/rotate",
    response_model=WorkflowRef,
    status_code=202,
    tags=["keys"],
    name="keys.rotate",
    responses=WORKFLOW,
)
async def rotate_key(
    body: RotateRequest,
    request: Request,
    p: Principal = Depends(KEYS),  # noqa: B008
) -> WorkflowRef:
    c = ctx(request)
    symbol = c.market(body.market)
    cs = c.settings.control
    warm = body.warm_key_ref or cs.warm_key_ref
    if not warm:
        raise ApiError(409, "no warm key configured (control.warm_key_ref) and none given")
    inp = RotateKeyInput(
        symbol,
        warm,
        cs.rotation_fee_usei,
        dict(cs.rotation_assets),
        reason=body.reason,
        actor=p.actor,
    )
    wid = f"rotate-key/{symbol}"  # one rotation per market at a time
    return await temporal.start(c, "RotateSigningKey", inp, wid, p, request_id(request))


# --- backups --------------------------------------------------------------------------
class BackupRequest(Strict):
    reason: str = Field("manual", max_length=500)


class RestoreRequest(Strict):
    expected_checksum: str = Field(pattern=r"^[0-9a-f]{64}$", description="manifest sha256")
    reason: str = Field("", max_length=500)
    confirm: bool = Field(description="must be true: restore overwrites the live stores")


@router.get("/backups", tags=["backups"], name="backups.list")
async def list_backups(
    request: Request,
    _: Principal = Depends(BACKUPS_READ),  # noqa: B008
) -> list[dict[str, Any]]:
    rows = await ctx(request).pool.fetch(
        "SELECT id, started_at, finished_at, location, checksum, size_bytes, status, details "
        "FROM backups ORDER BY started_at DESC LIMIT 500"
    )
    return [row(r) for r in rows]


@router.post(
    "/backups",
    response_model=WorkflowRef,
    status_code=202,
    tags=["backups"],
    name="backups.start",
    responses=WORKFLOW,
)
async def start_backup(
    body: BackupRequest,
    request: Request,
    p: Principal = Depends(BACKUPS),  # noqa: B008
) -> WorkflowRef:
    c = ctx(request)
    wid = _wid("backup", datetime.now().strftime("%Y%m%dT%H%M%S"))
    inp = BackupInput(reason=body.reason, actor=p.actor)
    return await temporal.start(c, "Backup", inp, wid, p, request_id(request))


@router.post(
    "/backups/{backup_id}/restore",
    response_model=WorkflowRef,
    status_code=202,
    tags=["backups"],
    name="backups.restore",
    responses=WORKFLOW,
)
async def restore_backup(
    backup_id: str,
    body: RestoreRequest,
    request: Request,
    p: Principal = Depends(RESTORE),  # noqa: B008
) -> WorkflowRef:
    c = ctx(request)
    if not body.confirm:
        raise ApiError(422, "restore overwrites the live stores: send confirm=true")
    found = await c.pool.fetchval(
        "SELECT status FROM backups WHERE id = $1 AND checksum = $2",
        backup_id,
        body.expected_checksum,
    )
    if found != "complete":
        raise ApiError(404, f"no complete backup {short(backup_id)!r} with that checksum")
    inp = RestoreInput(backup_id, p.actor, body.reason, body.expected_checksum)
    wid = "restore"  # one restore at a time, platform-wide
    return await temporal.start(c, "Restore", inp, wid, p, request_id(request))


# --- runbooks -------------------------------------------------------------------------
class RunbookRequest(Strict):
    runbook: str = Field(pattern="^(" + "|".join(RUNBOOKS) + ")$")
    market: str = Field(max_length=32)
    reason: str = Field("", max_length=500)


class DecisionRequest(Strict):
    step: str = Field(pattern=NAME)
    reason: str = Field("", max_length=500)


@router.get("/runbooks", tags=["runbooks"], name="runbooks.list")
async def list_runbooks(
    request: Request,
    _: Principal = Depends(READ),  # noqa: B008
) -> dict[str, Any]:

    started = await ctx(request).pool.fetch(
        "SELECT workflow_id, started_by, created_at FROM api_workflows "
        "WHERE workflow_type = 'Runbook' ORDER BY created_at DESC LIMIT 100"
    )
    return {
        "runbooks": {name: list(PLANS[name]) for name in RUNBOOKS},
        "started": [row(r) for r in started],
    }


@router.post(
    "/runbooks",
    response_model=WorkflowRef,
    status_code=202,
    tags=["runbooks"],
    name="runbooks.start",
    responses=WORKFLOW,
)
async def start_runbook(
    body: RunbookRequest,
    request: Request,
    p: Principal = Depends(RUNBOOKS_DO),  # noqa: B008
) -> WorkflowRef:
    c = ctx(request)
    symbol = c.market(body.market)
    inp = RunbookInput(body.runbook, symbol, p.actor, body.reason)
    wid = _wid("runbook", body.runbook, symbol)
    return await temporal.start(c, "Runbook", inp, wid, p, request_id(request))


async def _decide(
    request: Request, workflow_id: str, what: str, body: DecisionRequest, p: Principal
) -> dict[str, Any]:
    c = ctx(request)
    if not workflow_id.startswith("api-runbook-"):
        raise ApiError(404, f"no runbook {short(workflow_id)!r} started through the API")
    result = await temporal.update(c, workflow_id, what, Decision(body.step, p.actor, body.reason))
    return {"workflow_id": workflow_id, "result": result}


@router.post(
    "/runbooks/{workflow_id}/approve",
    tags=["runbooks"],
    name="runbooks.approve",
    responses=WORKFLOW,
)
async def approve_runbook(
    workflow_id: str,
    body: DecisionRequest,
    request: Request,
    p: Principal = Depends(RUNBOOKS_DO),  # noqa: B008
) -> dict[str, Any]:
    return await _decide(request, workflow_id, "approve", body, p)


@router.post(
    "/runbooks/{workflow_id}/abort", tags=["runbooks"], name="runbooks.abort", responses=WORKFLOW
)
async def abort_runbook(
    workflow_id: str,
    body: DecisionRequest,
    request: Request,
    p: Principal = Depends(RUNBOOKS_DO),  # noqa: B008
) -> dict[str, Any]:
    return await _decide(request, workflow_id, "abort", body, p)


# --- workflows and audit --------------------------------------------------------------
@router.get("/workflows", response_model=Page, tags=["workflows"], name="workflows.list")
async def list_workflows(
    request: Request,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, max_length=512),
    _: Principal = Depends(READ),  # noqa: B008
) -> Page:
    c = ctx(request)
    args: list[Any] = []
    where = ""
    if cursor:
        args = cursor_position(cursor)
        where = "WHERE (created_at, workflow_id) < ($1, $2)"
    rows = await c.pool.fetch(
        f"SELECT workflow_id, workflow_type, started_by, request_id, created_at "
        f"FROM api_workflows {where} ORDER BY created_at DESC, workflow_id DESC "
        f"LIMIT {limit + 1}",
        *args,
    )
    nxt = None
    if len(rows) > limit:
        last = rows[limit - 1]
        nxt = encode_cursor(last["created_at"], last["workflow_id"])
    return Page(items=[row(r) for r in rows[:limit]], next_cursor=nxt)


@router.get(
    "/workflows/{workflow_id:path}", tags=["workflows"], name="workflows.get", responses=WORKFLOW
)
async def get_workflow(
    workflow_id: str,
    request: Request,
    _: Principal = Depends(READ),  # noqa: B008
) -> dict[str, Any]:
    """Status (and result when done) of a workflow the API started."""
    c = ctx(request)
    known = await c.pool.fetchrow(
        "SELECT workflow_type, started_by, request_id FROM api_workflows WHERE workflow_id = $1",
        workflow_id,
    )
    if known is None:
        raise ApiError(404, f"no workflow {short(workflow_id)!r} started through the API")
    out = await temporal.describe(c, workflow_id)
    out.update(started_by=known["started_by"], request_id=known["request_id"])
    return out


@router.get("/audit", response_model=Page, tags=["audit"], name="audit.list")
async def audit_log(
    request: Request,
    actor: str | None = Query(None, max_length=200),
    action: str | None = Query(None, max_length=200),
    limit: int = Query(100, ge=1, le=1000),
    before_id: int | None = Query(None, ge=1, le=INT64_MAX),
    _: Principal = Depends(AUDIT),  # noqa: B008
) -> Page:
    rows = await ctx(request).pool.fetch(
        "SELECT id, ts, actor, action, target, params, outcome, request_id, hash FROM audit_log "
        "WHERE ($1::text IS NULL OR actor = $1) AND ($2::text IS NULL OR action = $2) "
        "AND ($3::bigint IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
        actor,
        action,
        before_id,
        limit + 1,
    )
    nxt = str(rows[limit - 1]["id"]) if len(rows) > limit else None
    return Page(items=[row(r) for r in rows[:limit]], next_cursor=nxt)
