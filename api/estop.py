"""The emergency stop, both paths at once (DESIGN.md): halt each hot path directly over its
control API (milliseconds) and start the ``EmergencyStop`` workflow, which makes sure every
order is cancelled on the venue (seconds, survives crashes).

Either path may be down. A hot path that cannot be reached is left to the workflow (it
cancels on the venue). When Temporal cannot be reached the stop is recorded as pending —
in PostgreSQL, or in a spool file when that is down too — and the API starts the workflow
as soon as Temporal answers again. A spooled stop leaves the spool only once Temporal has
acknowledged its workflow start.

Every id here is the API's own (``new_stop_id``): a client's X-Request-ID is recorded with
the stop, never used as an idempotency key, so two stops are never mistaken for one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from api.context import AppContext
from api.errors import ApiError
from flashmm.hotpath_client import send_command
from flashmm.inputs import short, storable_text
from workflows.starters import start_emergency_stop
from workflows.types import EmergencyStopInput

log = logging.getLogger(__name__)


def new_stop_id() -> str:
    return uuid.uuid4().hex


async def halt_hotpath(c: AppContext, market: str, reason: str, stop_id: str) -> dict[str, Any]:
    url = c.hotpaths.get(market)
    if not url:
        return {"halted": False, "detail": "no hot path endpoint configured on the API"}
    if not c.control_token:
        return {"halted": False, "detail": "control token not configured on the API"}
    try:
        status, data = await send_command(
            url,
            c.control_token,
            f"api-estop/{stop_id}/{market}",
            "halt",
            {"reason": storable_text(reason[:200])},
            aiohttp.ClientTimeout(total=c.settings.api.hotpath_timeout_s),
            c.hotpath_http(),
        )
        if status == 200:
            return {"halted": True, "detail": "halted", "state": data.get("state", {})}
        why = short(str(data.get("error", "")), 200)
        return {"halted": False, "detail": f"hot path answered {status}: {why}"}
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as e:
        return {"halted": False, "detail": f"hot path unreachable: {type(e).__name__}"}


async def start_workflow(c: AppContext, inp: EmergencyStopInput) -> str:
    client = await c.temporal()
    handle = await c.temporal_call(start_emergency_stop(client, inp))
    return str(handle.id)


class PendingStops:
    """Stops that still need their workflow started."""

    def __init__(self, c: AppContext) -> None:
        self.c = c
        self.spool = Path(c.settings.api.spool_dir) / "pending-estops.jsonl"

    async def add(self, rid: str, inp: EmergencyStopInput) -> str:
        """Where it was recorded: "postgres" or "spool"."""
        try:
            await asyncio.wait_for(
                self.c.pool.execute(
                    "INSERT INTO pending_estops (id, markets, reason, actor, flatten, "
                    "loss_budget) VALUES ($1, $2::jsonb, $3, $4, $5, $6) "
                    "ON CONFLICT (id) DO NOTHING",
                    rid,
                    json.dumps(inp.markets),
                    storable_text(inp.reason),
                    inp.actor,
                    inp.flatten,
                    inp.loss_budget_usdc,
                ),
                1.5,
            )
            return "postgres"
        except (OSError, asyncpg.PostgresError, TimeoutError):
            self.spool.parent.mkdir(parents=True, exist_ok=True)
            with self.spool.open("a") as f:
                f.write(json.dumps({"id": rid, **_dump(inp)}) + "\n")
                f.flush()
                os.fsync(f.fileno())
            return "spool"

    async def start_all(self) -> list[str]:
        """Start the workflow for each pending stop; returns the workflow ids started.
        Raises (ApiError 503 and the like) while Temporal is still unreachable; a stop that
        did not start stays where it was recorded."""
        started = await self._start_spooled()
        rows = await self.c.pool.fetch(
            "SELECT id, markets, reason, actor, flatten, loss_budget FROM pending_estops "
            "WHERE started_at IS NULL ORDER BY requested_at"
        )
        for r in rows:
            inp = EmergencyStopInput(
                json.loads(r["markets"]),
                r["reason"],
                r["actor"],
                r["flatten"],
                float(r["loss_budget"]),
                r["id"],
            )
            wid = await start_workflow(self.c, inp)
            await self.c.pool.execute(
                "UPDATE pending_estops SET workflow_id = $2, started_at = now() WHERE id = $1",
                r["id"],
                wid,
            )
            started.append(wid)
        return started

    async def _start_spooled(self) -> list[str]:
        """Spooled stops first, straight to Temporal: each line is removed only after its
        start is acknowledged (then recorded in PostgreSQL when it answers)."""
        if not self.spool.exists():
            return []
        lines = [ln for ln in self.spool.read_text().splitlines() if ln.strip()]
        started: list[str] = []
        try:
            while lines:
                d = json.loads(lines[0])
                rid = d.pop("id")
                wid = await start_workflow(self.c, EmergencyStopInput(**d, request_id=rid))
                started.append(wid)
                lines.pop(0)
                self._rewrite(lines)
                with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
                    await self._record_started(rid, EmergencyStopInput(**d), wid)
        finally:
            self._rewrite(lines)
        return started

    def _rewrite(self, lines: list[str]) -> None:
        if not lines:
            self.spool.unlink(missing_ok=True)
            return
        tmp = self.spool.with_suffix(".tmp")
        tmp.write_text("".join(ln + "\n" for ln in lines))
        os.replace(tmp, self.spool)

    async def _record_started(self, rid: str, inp: EmergencyStopInput, wid: str) -> None:
        await asyncio.wait_for(
            self.c.pool.execute(
                "INSERT INTO pending_estops (id, markets, reason, actor, flatten, loss_budget, "
                "workflow_id, started_at) VALUES ($1, $2::jsonb, $3, $4, $5, $6, $7, now()) "
                "ON CONFLICT (id) DO UPDATE SET workflow_id = $7, started_at = now()",
                rid,
                json.dumps(inp.markets),
                storable_text(inp.reason),
                inp.actor,
                inp.flatten,
                inp.loss_budget_usdc,
                wid,
            ),
            1.5,
        )

    async def run(self, interval_s: float = 2.0) -> None:
        """Background: keep trying until every pending stop has its workflow."""
        while True:
            with contextlib.suppress(ApiError, OSError, asyncpg.PostgresError, TimeoutError):
                for wid in await self.start_all():
                    log.warning("pending emergency stop started", extra={"workflow_id": wid})
            await asyncio.sleep(interval_s)


def _dump(inp: EmergencyStopInput) -> dict[str, Any]:
    return {
        "markets": inp.markets,
        "reason": inp.reason,
        "actor": inp.actor,
        "flatten": inp.flatten,
        "loss_budget_usdc": inp.loss_budget_usdc,
    }
