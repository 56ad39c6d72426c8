"""EmergencyStop: for one market or all, make sure nothing of ours rests on the venue.

Per market, in parallel: tell the hot path to halt (best effort: if it is unreachable the
venue cancel below is what counts), record HALTED in the market's lifecycle, cancel every
resting order on the venue and verify none remain (retried until verified), read the
balances for reconciliation, persist the halt in PostgreSQL. Then notify and audit.
Started with the id ``estop/<markets>`` and the conflict policy USE_EXISTING, two starts at
once join the same run.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.types import (
    AuditEntry,
    EmergencyStopInput,
    EmergencyStopResult,
    HotpathCommand,
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
    @workflow.run
    async def run(self, inp: EmergencyStopInput) -> EmergencyStopResult:
        results = await asyncio.gather(*(self._stop_market(m, inp) for m in inp.markets))
        summary = ", ".join(
            f"{r.market}: {r.cancelled} cancelled, {r.verified_open} open" for r in results
        )
        notified = await workflow.execute_activity(
            "notify",
            Notice(
                f"Emergency stop: {', '.join(inp.markets)}",
                f"{inp.reason} (by {inp.actor}). {summary}",
                "critical",
                f"estop/{workflow.info().workflow_id}",
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
                {"reason": inp.reason, "flatten": inp.flatten},
                "verified" if all(r.verified_open == 0 for r in results) else "incomplete",
                workflow.info().workflow_id,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=STEADY,
            result_type=str,
        )
        return EmergencyStopResult(inp.reason, list(results), notified, audit_hash)

    async def _stop_market(self, market: str, inp: EmergencyStopInput) -> MarketStopResult:
        wf_id = workflow.info().workflow_id
        halted, detail = True, "halted"
        try:
            await workflow.execute_activity(
                "hotpath_command",
                HotpathCommand(
                    market,
                    f"{wf_id}/halt/{market}",
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
