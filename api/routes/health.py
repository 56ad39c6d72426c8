"""Liveness, readiness (each dependency's status, and the audit spool's) and Prometheus
metrics. No auth: they carry no trading data and orchestrators call them.

``/ready`` is ``degraded`` when an optional dependency is down or the audit spool is stuck
(its oldest entry older than the sink's ``stuck_after_s`` while entries wait), and
``not_ready`` when PostgreSQL is."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict
from typing import Any

import aiohttp
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from api.deps import ctx

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Dependency(BaseModel):
    ok: bool
    required: bool
    detail: str
    latency_ms: float


class AuditSpool(BaseModel):
    depth: int = Field(description="audit entries waiting in the spool for PostgreSQL")
    oldest_age_s: float | None = Field(description="age of the oldest spooled entry")
    quarantined: int = Field(description="entries PostgreSQL refused for good, set aside")
    stuck: bool = Field(description="the spool has not drained for too long")


class Ready(BaseModel):
    status: str  # ready | degraded | not_ready
    dependencies: dict[str, Dependency]
    audit: AuditSpool


@router.get("/health", response_model=Health, name="health")
async def health() -> Health:
    return Health(status="ok")


async def _check(name: str, required: bool, probe: Any) -> tuple[str, Dependency]:
    t0 = time.perf_counter()
    try:
        detail = await asyncio.wait_for(probe, 1.5)
        ok = True
    except Exception as e:  # a dependency down is an answer, not an error
        ok, detail = False, f"{type(e).__name__}"
    return name, Dependency(
        ok=ok,
        required=required,
        detail=str(detail),
        latency_ms=round((time.perf_counter() - t0) * 1000, 2),
    )


async def _hotpath(url: str) -> str:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as s,
        s.get(f"{url}/v1/status") as r,
    ):
        # 401 without the token still proves it is up; the token is not sent to be probed
        return f"http {r.status}"


@router.get(
    "/ready",
    response_model=Ready,
    name="ready",
    responses={503: {"model": Ready, "description": "a required dependency is down"}},
)
async def ready(request: Request) -> JSONResponse:
    c = ctx(request)

    async def pg() -> str:
        await c.pool.fetchval("SELECT 1")
        return "ok"

    async def redis() -> str:
        await c.redis.ping()
        return "ok"

    async def temporal() -> str:
        client = await c.temporal()
        await client.service_client.check_health()
        return "ok"

    checks = [_check("postgres", True, pg()), _check("redis", False, redis())]
    checks.append(_check("temporal", False, temporal()))
    checks += [_check(f"hotpath:{m}", False, _hotpath(u)) for m, u in sorted(c.hotpaths.items())]
    deps = dict(await asyncio.gather(*checks))
    spool = await c.audit.stats()
    deps["audit_spool"] = Dependency(
        ok=not spool.stuck,
        required=False,
        detail=f"{spool.depth} waiting, {spool.quarantined} quarantined"
        + (f", oldest {spool.oldest_age_s:.0f}s: not draining" if spool.stuck else ""),
        latency_ms=0.0,
    )
    if not all(d.ok for d in deps.values() if d.required):
        status, code = "not_ready", 503
    elif all(d.ok for d in deps.values()):
        status, code = "ready", 200
    else:
        status, code = "degraded", 200
    body = Ready(status=status, dependencies=deps, audit=AuditSpool(**asdict(spool)))
    return JSONResponse(body.model_dump(), status_code=code)


@router.get("/metrics", name="metrics", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
