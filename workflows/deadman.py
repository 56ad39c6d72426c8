"""DeadmanSwitch: a market's hot path stopped cycling; leave no order of it behind.

Started by the per-host worker's watcher (``workers/deadman.py``) when a heartbeat goes
stale, with an id unique per incident (market, the hot path's incarnation and its last
cycle time), so a watcher that restarts joins the same run and two incidents never merge.

Steps: persist HALTED in PostgreSQL first (a hot path restarted from here on comes back
halted until an operator resumes it); then, at once, tell the hot path to halt (it may be
alive but stuck; best effort, a dead one does not answer) and cancel every resting order of
the market's key on the venue, verified none remain (the emergency stop's activity, retried
until verified); record HALTED in the market's lifecycle; notify; audit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.lifecycle import TradingLifecycle
from workflows.policies import FAST, STEADY, UNTIL_VERIFIED
from workflows.types import (
    AuditEntry,
    HotpathCommand,
    Notice,
    VenueRequest,
    host_queue,
    lifecycle_id,
)

with workflow.unsafe.imports_passed_through():
    from activities.hotpath import HotpathActivities
    from activities.records import RecordActivities
    from activities.venue import VenueActivities


@dataclass
class DeadmanInput:
    market: str
    incarnation: str  # which run of the hot path died
    last_cycle_at: float  # wall time of its last loop turn
    reason: str  # "heartbeat missed: last cycle 1.7s ago (limit 1.5s)"
    open_orders: int = 0  # what its last heartbeat said


@dataclass
class DeadmanResult:
    market: str
    hotpath_halted: bool
    hotpath_detail: str
    cancelled: int
    verified_open: int
    notified: bool
    audit_hash: str


def deadman_id(market: str, incarnation: str, last_cycle_at: float) -> str:
    """One workflow id per incident: the run that died and when it last cycled."""
    return f"deadman/{market}/{incarnation}/{int(last_cycle_at * 1000)}"


@workflow.defn(name="DeadmanSwitch")
class DeadmanSwitch:
    @workflow.run
    async def run(self, inp: DeadmanInput) -> DeadmanResult:
        info = workflow.info()
        key = f"{info.workflow_id}/{info.run_id}"
        reason = f"dead-man switch: {inp.reason}"
        await workflow.execute_activity_method(
            RecordActivities.persist_halt,
            args=[inp.market, reason],
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=STEADY,
        )
        (halted, detail), venue = await asyncio.gather(
            self._halt_hotpath(inp.market, f"{key}/halt", reason),
            workflow.execute_activity_method(
                VenueActivities.cancel_all,
                VenueRequest(inp.market),
                start_to_close_timeout=timedelta(seconds=60),
                heartbeat_timeout=timedelta(seconds=10),
                retry_policy=UNTIL_VERIFIED,
            ),
        )
        try:
            await workflow.get_external_workflow_handle(lifecycle_id(inp.market)).signal(
                TradingLifecycle.halted_by_emergency_stop, reason
            )
        except Exception:  # no lifecycle workflow for this market: nothing to update
            workflow.logger.info("no lifecycle workflow for %s", inp.market)
        cancelled, left = venue.cancelled, venue.open
        notified = await workflow.execute_activity_method(
            RecordActivities.notify,
            Notice(
                f"Hot path dead: {inp.market} halted",
                f"{inp.reason}; run {inp.incarnation}. {cancelled} order(s) cancelled, "
                f"{left} open at the venue. Hot path {detail}. Resume it deliberately "
                f"(flashmm market resume {inp.market}) once it runs again.",
                "critical",
                key,
            ),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
        audit_hash = await workflow.execute_activity_method(
            RecordActivities.audit,
            AuditEntry(
                "deadman",
                "deadman_halt",
                inp.market,
                {
                    "reason": inp.reason,
                    "incarnation": inp.incarnation,
                    "last_cycle_at": inp.last_cycle_at,
                },
                "verified" if left == 0 else "incomplete",
                key,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=STEADY,
        )
        return DeadmanResult(inp.market, halted, detail, cancelled, left, notified, audit_hash)

    async def _halt_hotpath(self, market: str, command_id: str, reason: str) -> tuple[bool, str]:
        """Halt it too if it still answers (a stuck loop with a live control API); a dead
        one does not, and the venue cancel is what counts."""
        try:
            res = await workflow.execute_activity_method(
                HotpathActivities.command,
                HotpathCommand(market, command_id, "halt", {"reason": reason}),
                task_queue=host_queue(market),
                start_to_close_timeout=timedelta(seconds=3),
                schedule_to_close_timeout=timedelta(seconds=10),
                retry_policy=FAST,
            )
        except ActivityError as e:
            return False, f"not reached ({e.cause or e})"
        return True, f"halted ({res.get('state', {}).get('risk_state', 'halted')})"
