"""The FastAPI application: routes, the request pipeline, error bodies, CORS (off unless
origins are configured), a tracing span per request (only with tracing on) and the
background task that starts pending emergency stops."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api import errors
from api.admission import ReadAdmission
from api.context import AppContext
from api.estop import PendingStops
from api.middleware import Pipeline, Tracing
from api.routes import auth, control, estop, health, ops, stream, trading
from flashmm import tracing
from flashmm.config import Settings
from flashmm.stores.pg.anchor import anchor_loop

DESCRIPTION = """Operate FlashMM: markets, positions, orders, fills, PnL, risk, models, keys,
backups, runbooks and the emergency stop. Authenticate with a JWT from `/v1/auth/login`
(`Authorization: Bearer ...`) or an API key (`X-API-Key: fmm_...`). Every mutating call is
written to the tamper-evident audit log."""


def create_app(settings: Settings, context: AppContext | None = None) -> FastAPI:
    """``context`` given: the caller owns it (tests); else it is made at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        c = context or await AppContext.create(settings)
        app.state.ctx = c
        # what start-up made (routes, schemas, settings, pools) lives as long as the process:
        # out of the collector's scans, full collections under read load stay short, so they
        # do not hold up the emergency stop's lane
        gc.collect()
        gc.freeze()
        tasks = [
            asyncio.create_task(PendingStops(c).run()),
            asyncio.create_task(_drain_audit(c)),
            asyncio.create_task(
                anchor_loop(c.pool, c.redis, settings.stores.audit_anchor_interval_s)
            ),
        ]
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            if context is None:
                await c.close()

    api = settings.api
    app = FastAPI(
        title="FlashMM operator API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs" if api.docs else None,
        redoc_url=None,
        # FastAPI's own telemetry stays off: its spans record query strings and its logs
        # validation input (secrets), and it would install exporters of its own; the span
        # per request is ours (api.middleware.Tracing), added below when tracing is on
        telemetry={"tracing": False, "metrics": False, "logs": False, "auto_configure": False},
    )
    errors.install(app)
    for r in (health, auth, trading, control, ops, estop, stream):
        app.include_router(r.router)
    if api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(api.cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            max_age=600,
        )
    if context is not None:
        app.state.ctx = context

    async def audit(*args: Any) -> str:
        c: AppContext = app.state.ctx
        return await c.audit.record(*args)

    app.add_middleware(ReadAdmission, limits=api.admission)  # inside the pipeline
    app.add_middleware(
        Pipeline, max_body=api.max_body_bytes, timeout_s=api.request_timeout_s, audit=audit
    )
    if tracing.setup(settings, "flashmm-api"):  # off: no middleware at all
        app.add_middleware(Tracing)  # outermost: its span covers the whole pipeline
    return app


async def _drain_audit(c: AppContext, interval_s: float = 2.0) -> None:
    while True:
        with contextlib.suppress(Exception):  # PostgreSQL still down: try again later
            await c.audit.drain()
        await asyncio.sleep(interval_s)
