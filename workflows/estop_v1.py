"""EmergencyStop as released in v0.1.0, kept so that runs started by that release (and their
recorded histories) replay unchanged; new runs take the ``estop-v2`` path in ``estop.py``.
Delete with ``workflow.deprecate_patch`` once no v0.1.0 run can still be open (see
docs/deployment.md, "Upgrading workflows")."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.lifecycle import TradingLifecycle
from workflows.policies import FAST, STEADY, UNTIL_VERIFIED
from workflows.types import (
    AuditEntry,
    EmergencyStopInput,
    HotpathCommand,
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


async def stop_v1(inp: EmergencyStopInput, tag: str) -> tuple[list[MarketStopResult], bool, str]:
    results = await asyncio.gather(*(_market_v1(m, inp, tag) for m in inp.markets))
    summary = ", ".join(
        f"{r.market}: {r.cancelled} cancelled, {r.verified_open} open" for r in results
    )
    notified = await workflow.execute_activity_method(
        RecordActivities.notify,
        Notice(
            f"Emergency stop: {', '.join(inp.markets)}",
            f"{inp.reason} (by {inp.actor}). {summary}",
            "critical",
            f"estop/{tag}",
        ),
        start_to_close_timeout=timedelta(seconds=60),
        retry_policy=RetryPolicy(maximum_attempts=3),
    )
    audit_hash = await workflow.execute_activity_method(
        RecordActivities.audit,
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
    )
    return list(results), notified, audit_hash


async def _market_v1(market: str, inp: EmergencyStopInput, tag: str) -> MarketStopResult:
    halted, detail = True, "halted"
    try:
        await workflow.execute_activity_method(
            HotpathActivities.command,
            HotpathCommand(
                market, f"{tag}/halt/{market}", "halt", {"reason": f"emergency stop: {inp.reason}"}
            ),
            task_queue=host_queue(market),
            start_to_close_timeout=timedelta(seconds=5),
            schedule_to_close_timeout=timedelta(seconds=15),
            retry_policy=FAST,
        )
    except ActivityError as e:
        halted, detail = False, f"hot path not reached: {e.cause or e}"
    try:
        await workflow.get_external_workflow_handle(lifecycle_id(market)).signal(
            TradingLifecycle.halted_by_emergency_stop, f"emergency stop: {inp.reason}"
        )
    except Exception:  # no lifecycle workflow for this market: nothing to update
        workflow.logger.info("no lifecycle workflow for %s", market)
    venue = await workflow.execute_activity_method(
        VenueActivities.cancel_all,
        VenueRequest(market),
        start_to_close_timeout=timedelta(seconds=60),
        heartbeat_timeout=timedelta(seconds=10),
        retry_policy=UNTIL_VERIFIED,
    )
    position = await workflow.execute_activity_method(
        VenueActivities.balances,
        VenueRequest(market),
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=STEADY,
    )
    flattened: dict[str, Any] = {}
    if inp.flatten and halted:
        status = await workflow.execute_activity_method(
            HotpathActivities.status,
            market,
            task_queue=host_queue(market),
            start_to_close_timeout=timedelta(seconds=5),
            retry_policy=FAST,
        )
        lots = int(status.get("position_lots", 0))
        if lots:
            done = await workflow.execute_activity_method(
                VenueActivities.flatten,
                VenueRequest(market, "", inp.loss_budget_usdc, lots),
                start_to_close_timeout=timedelta(seconds=60),
                heartbeat_timeout=timedelta(seconds=10),
                retry_policy=FAST,
            )
            flattened = asdict(done)
    await workflow.execute_activity_method(
        RecordActivities.persist_halt,
        args=[market, f"emergency stop: {inp.reason}"],
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=STEADY,
    )
    return MarketStopResult(
        market, halted, detail, venue.cancelled, venue.open, asdict(position), flattened
    )
