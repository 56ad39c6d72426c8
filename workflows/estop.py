"""EmergencyStop: for one market or all, make sure nothing of ours rests on the venue.

Per market, in parallel: tell the hot path to halt (best effort: if it is unreachable the
venue cancel below is what counts), record HALTED in the market's lifecycle, cancel every
resting order on the venue and verify none remain (retried until verified), read the
balances for reconciliation, persist the halt in PostgreSQL. Then notify and audit.

Started with the id ``estop/<markets>`` by signal-with-start: a second stop for the same
markets while one runs joins that run as an ``also_stop`` signal and is carried out after it
(halted again — the market may have been resumed in between — cancelled, flattened if it asks
for that), never dropped; one started after the run ended is a new run. Every id this
workflow derives (hot-path command ids, notification de-dup keys, audit request ids) holds
the run id and the request's number in the run, so no stop is mistaken for an earlier one.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from flashmm.inputs import storable_text
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

FAST = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_attempts=3,
    non_retryable_error_types=["CommandRefused", "UnknownMarket"],
)
UNTIL_VERIFIED = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=5),
    non_retryable_error_types=["KeyError"],
)
STEADY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


@workflow.defn(name="EmergencyStop")
class EmergencyStop:
    def __init__(self) -> None:
        self._joined: list[EmergencyStopInput] = []
        self._first_request = ""

    @workflow.signal(name="also_stop")
    def also_stop(self, inp: EmergencyStopInput) -> None:
        """Another stop for the same markets (signal-with-start); the start's own copy of its
        input arrives here too and is skipped."""
        if inp.request_id and inp.request_id == self._first_request:
            return
        if any(j.request_id and j.request_id == inp.request_id for j in self._joined):
            return
        self._joined.append(inp)

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
        return EmergencyStopResult(inp.reason, markets, notified, audit_hash, joined)

    async def _stop(
        self, inp: EmergencyStopInput, n: int
    ) -> tuple[list[MarketStopResult], bool, str]:
        """One request: every market in parallel, then notify and audit."""
        inp.reason = storable_text(inp.reason)  # a NUL must not cost the halt or the record
        tag = f"{workflow.info().workflow_id}/{workflow.info().run_id}/{n}"
        results = await asyncio.gather(*(self._stop_market(m, inp, tag) for m in inp.markets))
        summary = ", ".join(
            f"{r.market}: {r.cancelled} cancelled, {r.verified_open} open" for r in results
        )
        notified = await workflow.execute_activity(
            "notify",
            Notice(
                f"Emergency stop: {', '.join(inp.markets)}",
                f"{inp.reason} (by {inp.actor}). {summary}",
                "critical",
                f"estop/{tag}",
            ),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=3),
            result_type=bool,
        )
        audit_hash = await workflow.execute_activity(
            "audit",
            AuditEntry(
                inp.actor,
                "emergency_stop",
                ",".join(inp.markets),
                {"reason": inp.reason, "flatten": inp.flatten, "request_id": inp.request_id},
                "verified" if all(r.verified_open == 0 for r in results) else "incomplete",
                tag,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=STEADY,
            result_type=str,
        )
        return list(results), notified, audit_hash

    async def _stop_market(
        self, market: str, inp: EmergencyStopInput, tag: str
    ) -> MarketStopResult:
        halted, detail = True, "halted"
        try:
            await workflow.execute_activity(
                "hotpath_command",
                HotpathCommand(
                    market,
                    f"{tag}/halt/{market}",
                    "halt",
                    {"reason": f"emergency stop: {inp.reason}"},
                ),
                task_queue=host_queue(market),
                start_to_close_timeout=timedelta(seconds=5),
                schedule_to_close_timeout=timedelta(seconds=15),
                retry_policy=FAST,
                result_type=dict,
            )
        except ActivityError as e:
            halted, detail = False, f"hot path not reached: {e.cause or e}"
        try:
            await workflow.get_external_workflow_handle(lifecycle_id(market)).signal(
                "halted_by_emergency_stop", f"emergency stop: {inp.reason}"
            )
        except Exception:  # no lifecycle workflow for this market: nothing to update
            workflow.logger.info("no lifecycle workflow for %s", market)
        venue = await workflow.execute_activity(
            "venue_cancel_all",
            VenueRequest(market),
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=timedelta(seconds=10),
            retry_policy=UNTIL_VERIFIED,
            result_type=dict,
        )
        position = await workflow.execute_activity(
            "venue_balances",
            VenueRequest(market),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=STEADY,
            result_type=dict,
        )
        flattened: dict[str, Any] = {}
        if inp.flatten and halted:
            status = await workflow.execute_activity(
                "hotpath_status",
                market,
                task_queue=host_queue(market),
                start_to_close_timeout=timedelta(seconds=5),
                retry_policy=FAST,
                result_type=dict,
            )
            lots = int(status.get("position_lots", 0))
            if lots:
                flattened = await workflow.execute_activity(
                    "venue_flatten",
                    VenueRequest(market, "", inp.loss_budget_usdc, lots),
                    start_to_close_timeout=timedelta(seconds=60),
                    heartbeat_timeout=timedelta(seconds=10),
                    retry_policy=FAST,
                    result_type=dict,
                )
        await workflow.execute_activity(
            "persist_halt",
            args=[market, f"emergency stop: {inp.reason}"],
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=STEADY,
        )
        return MarketStopResult(
            market,
            halted,
            detail,
            int(venue["cancelled"]),
            int(venue["open"]),
            position,
            flattened,
        )
