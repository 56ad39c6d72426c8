"""EmergencyStop: for one market or all, make sure nothing of ours rests on the venue.

Per market, independently and in parallel: persist the halt (so a restart comes back halted)
while telling the hot path to halt, record HALTED in the market's lifecycle, cancel every
resting order on the venue and verify none remain (retried until verified, within a bound),
read the balances for reconciliation, flatten if asked. One market's failure never blocks
another's; a step that fails is recorded in that market's result and the stop goes on. A
notification goes out when the stop starts and when it ends (with what failed); then audit.
Every activity has bounded timeouts. The ``progress`` query shows each market's step.

Started with the id ``estop/<markets>`` by signal-with-start: a second stop for the same
markets while one runs joins that run as an ``also_stop`` signal and is carried out after it
(halted again — the market may have been resumed in between — cancelled, flattened if it asks
for that), never dropped; one started after the run ended is a new run. Every id this
workflow derives (hot-path command ids, notification de-dup keys, audit request ids) holds
the run id and the request's number in the run, so no stop is mistaken for an earlier one.

Versioning: runs of v0.1.0 took the path in ``estop_v1.py``; ``workflow.patched("estop-v2")``
keeps their histories replaying.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import asdict
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from flashmm.inputs import storable_text
from workflows.estop_v1 import stop_v1
from workflows.lifecycle import TradingLifecycle
from workflows.policies import FAST, FEW, STEADY, UNTIL_VERIFIED
from workflows.types import (
    AuditEntry,
    EmergencyStopInput,
    EmergencyStopResult,
    HotpathCommand,
    JoinedStop,
    MarketStopResult,
    Notice,
    VenueRequest,
    host_queue,
    lifecycle_id,
)

with workflow.unsafe.imports_passed_through():
    from activities.hotpath import HotpathActivities
    from activities.records import RecordActivities
    from activities.venue import VenueActivities

T = TypeVar("T")

PATCH = "estop-v2"
# the bound on verifying cancels: past it the stop reports the market "incomplete" and ends
# (the hot path is halted and the halt persisted either way; operators are told)
CANCEL_BOUND = timedelta(minutes=5)
NOTIFY = RetryPolicy(maximum_attempts=3)


@workflow.defn(name="EmergencyStop")
class EmergencyStop:
    def __init__(self) -> None:
        self._joined: list[EmergencyStopInput] = []
        self._first_request = ""
        self._progress: dict[str, str] = {}

    @workflow.signal(name="also_stop")
    def also_stop(self, inp: EmergencyStopInput) -> None:
        """Another stop for the same markets (signal-with-start); the start's own copy of its
        input arrives here too and is skipped."""
        if inp.request_id and inp.request_id == self._first_request:
            return
        if any(j.request_id and j.request_id == inp.request_id for j in self._joined):
            return
        self._joined.append(inp)

    @workflow.query(name="progress")
    def progress(self) -> dict[str, str]:
        """Each market's current step in the request being carried out ("3 joined" etc.)."""
        return dict(self._progress)

    @workflow.run
    async def run(self, inp: EmergencyStopInput) -> EmergencyStopResult:
        self._first_request = inp.request_id
        self._joined = [
            j for j in self._joined if not j.request_id or j.request_id != inp.request_id
        ]
        markets, notified, audit_hash = await self._stop(inp, 0)
        joined: list[JoinedStop] = []
        while len(joined) < len(self._joined):  # joined while running: each carried out
            j = self._joined[len(joined)]
            j_markets, j_notified, j_hash = await self._stop(j, len(joined) + 1)
            joined.append(
                JoinedStop(
                    j.request_id, j.actor, j.reason, j.flatten, j_markets, j_notified, j_hash
                )
            )
        self._progress["request"] = "done"
        return EmergencyStopResult(inp.reason, markets, notified, audit_hash, joined)

    async def _stop(
        self, inp: EmergencyStopInput, n: int
    ) -> tuple[list[MarketStopResult], bool, str]:
        """One request: every market in parallel, then notify and audit."""
        inp.reason = storable_text(inp.reason)  # a NUL must not cost the halt or the record
        tag = f"{workflow.info().workflow_id}/{workflow.info().run_id}/{n}"
        if not workflow.patched(PATCH):
            return await stop_v1(inp, tag)
        self._progress = {"request": str(n)}
        title = f"Emergency stop: {', '.join(inp.markets)}"
        await _attempt(
            _notify(Notice(title, f"started: {inp.reason} (by {inp.actor})", "critical",
                           f"estop/{tag}/start"))
        )  # fmt: skip
        results = await asyncio.gather(*(self._market(m, inp, tag) for m in inp.markets))
        failed = [f"{r.market}: {e}" for r in results for e in r.errors]
        summary = ", ".join(
            f"{r.market}: {r.cancelled} cancelled, "
            + (f"{r.verified_open} open" if r.verified_open >= 0 else "open orders unknown")
            for r in results
        )
        ok, notified, _ = await _attempt(
            _notify(
                Notice(
                    title,
                    f"ended: {inp.reason} (by {inp.actor}). {summary}"
                    + (f". FAILED: {'; '.join(failed)}" if failed else ""),
                    "critical",
                    f"estop/{tag}",
                )
            )
        )
        complete = not failed and all(r.verified_open == 0 for r in results)
        _, audit_hash, err = await _attempt(
            workflow.execute_activity_method(
                RecordActivities.audit,
                AuditEntry(
                    inp.actor,
                    "emergency_stop",
                    ",".join(inp.markets),
                    {
                        "reason": inp.reason,
                        "flatten": inp.flatten,
                        "request_id": inp.request_id,
                        "failed": failed,
                    },
                    "verified" if complete else "incomplete",
                    tag,
                ),
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=timedelta(hours=1),
                retry_policy=STEADY,
            )
        )
        if err:
            workflow.logger.error("emergency stop %s: audit not written: %s", tag, err)
        return list(results), bool(ok and notified), audit_hash or ""

    async def _market(self, market: str, inp: EmergencyStopInput, tag: str) -> MarketStopResult:
        reason = f"emergency stop: {inp.reason}"
        errors: list[str] = []
        self._progress[market] = "halting"
        persisted, halt = await asyncio.gather(
            _attempt(
                workflow.execute_activity_method(
                    RecordActivities.persist_halt,
                    args=[market, reason],
                    start_to_close_timeout=timedelta(seconds=30),
                    schedule_to_close_timeout=timedelta(minutes=2),
                    retry_policy=STEADY,
                )
            ),
            _attempt(
                workflow.execute_activity_method(
                    HotpathActivities.command,
                    HotpathCommand(market, f"{tag}/halt/{market}", "halt", {"reason": reason}),
                    task_queue=host_queue(market),
                    start_to_close_timeout=timedelta(seconds=5),
                    schedule_to_close_timeout=timedelta(seconds=15),
                    retry_policy=FAST,
                )
            ),
        )
        if not persisted[0]:
            errors.append(f"persist halt: {persisted[2]}")
        halted = halt[0]
        detail = "halted" if halted else f"hot path not reached: {halt[2]}"
        try:
            await workflow.get_external_workflow_handle(lifecycle_id(market)).signal(
                TradingLifecycle.halted_by_emergency_stop, reason
            )
        except Exception:  # no lifecycle workflow for this market: nothing to update
            workflow.logger.info("no lifecycle workflow for %s", market)
        self._progress[market] = "cancelling"
        _, venue, err = await _attempt(
            workflow.execute_activity_method(
                VenueActivities.cancel_all,
                VenueRequest(market),
                start_to_close_timeout=timedelta(seconds=60),
                schedule_to_close_timeout=CANCEL_BOUND,
                heartbeat_timeout=timedelta(seconds=10),
                retry_policy=UNTIL_VERIFIED,
            )
        )
        cancelled, still_open = (venue.cancelled, venue.open) if venue is not None else (0, -1)
        if venue is None:
            errors.append(f"cancel: {err}")
        self._progress[market] = "reconciling"
        _, position, err = await _attempt(
            workflow.execute_activity_method(
                VenueActivities.balances,
                VenueRequest(market),
                start_to_close_timeout=timedelta(seconds=15),
                schedule_to_close_timeout=timedelta(seconds=60),
                retry_policy=FEW,
            )
        )
        if position is None:
            errors.append(f"balances: {err}")
        flattened: dict[str, Any] = {}
        if inp.flatten and halted:
            self._progress[market] = "flattening"
            flattened, err = await self._flatten(market, inp)
            if err:
                errors.append(f"flatten: {err}")
        self._progress[market] = "done" if not errors else "done with errors"
        return MarketStopResult(
            market,
            halted,
            detail,
            cancelled,
            still_open,
            asdict(position) if position is not None else {},
            flattened,
            errors,
            persisted[0],
        )

    async def _flatten(self, market: str, inp: EmergencyStopInput) -> tuple[dict[str, Any], str]:
        _, status, err = await _attempt(
            workflow.execute_activity_method(
                HotpathActivities.status,
                market,
                task_queue=host_queue(market),
                start_to_close_timeout=timedelta(seconds=5),
                schedule_to_close_timeout=timedelta(seconds=15),
                retry_policy=FAST,
            )
        )
        if status is None:
            return {}, f"position unknown: {err}"
        lots = int(status.get("position_lots", 0))
        if not lots:
            return {}, ""
        _, flattened, err = await _attempt(
            workflow.execute_activity_method(
                VenueActivities.flatten,
                VenueRequest(market, "", inp.loss_budget_usdc, lots),
                start_to_close_timeout=timedelta(seconds=60),
                schedule_to_close_timeout=timedelta(minutes=3),
                heartbeat_timeout=timedelta(seconds=10),
                retry_policy=FAST,
            )
        )
        return (asdict(flattened) if flattened is not None else {}), err


def _notify(notice: Notice) -> Awaitable[bool]:
    return workflow.execute_activity_method(
        RecordActivities.notify,
        notice,
        start_to_close_timeout=timedelta(seconds=30),
        schedule_to_close_timeout=timedelta(minutes=2),
        retry_policy=NOTIFY,
    )


async def _attempt(step: Awaitable[T]) -> tuple[bool, T | None, str]:
    """(succeeded, result or None, why it failed): a failed step is recorded, never fatal."""
    try:
        return True, await step, ""
    except ActivityError as e:
        return False, None, str(e.cause or e)
