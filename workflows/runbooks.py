"""On-call runbooks as workflows an operator can watch (query ``steps``) and, where a human
must decide, approve or abort through Updates: reconcile positions, flatten inventory, fail
the market-data feed over, restart (stop + start) a hot path."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.types import (
    PLANS,
    RUNBOOKS,
    AuditEntry,
    Decision,
    HotpathCommand,
    RunbookInput,
    RunbookResult,
    RunbookStep,
    VenueRequest,
    host_queue,
)

with workflow.unsafe.imports_passed_through():
    from activities.hotpath import HotpathActivities
    from activities.records import RecordActivities
    from activities.venue import VenueActivities

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
    non_retryable_error_types=["CommandRefused"],
)


class AbortedError(Exception):
    pass


@workflow.defn(name="Runbook")
class Runbook:
    @workflow.init
    def __init__(self, inp: RunbookInput) -> None:
        if inp.runbook not in RUNBOOKS:
            raise ValueError(f"unknown runbook {inp.runbook!r} (known: {RUNBOOKS})")
        self.inp = inp
        self.steps = [RunbookStep(s) for s in PLANS[inp.runbook]]
        self.approved: Decision | None = None
        self.aborted: Decision | None = None
        self._commands = 0

    @workflow.query
    def progress(self) -> list[RunbookStep]:
        return self.steps

    def _waiting(self) -> RunbookStep | None:
        return next((s for s in self.steps if s.status == "waiting_approval"), None)

    @workflow.update
    def approve(self, d: Decision) -> str:
        self.approved = d
        return f"approved {d.step}"

    @approve.validator
    def _validate_approve(self, d: Decision) -> None:
        w = self._waiting()
        if w is None or w.name != d.step:
            raise ValueError(f"step {d.step!r} is not waiting for approval")

    @workflow.update
    def abort(self, d: Decision) -> str:
        self.aborted = d
        return "aborting"

    @abort.validator
    def _validate_abort(self, d: Decision) -> None:
        if all(s.status in ("done", "failed", "aborted") for s in self.steps):
            raise ValueError("the runbook has finished")

    async def _hot(self, command: str, args: dict[str, Any]) -> dict[str, Any]:
        info = workflow.info()
        self._commands += 1  # ids never repeat: not within this run, not across runs
        cid = f"{info.workflow_id}/{info.run_id}/{self._commands}/{command}"
        return await workflow.execute_activity_method(
            HotpathActivities.command,
            HotpathCommand(self.inp.market, cid, command, {"reason": self.inp.reason, **args}),
            task_queue=host_queue(self.inp.market),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
        )

    async def _status(self) -> dict[str, Any]:
        return await workflow.execute_activity_method(
            HotpathActivities.status,
            self.inp.market,
            task_queue=host_queue(self.inp.market),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
        )

    async def _step(self, step: RunbookStep) -> None:
        inp = self.inp
        if step.name == "approve":
            step.status = "waiting_approval"
            self.approved = None
            await workflow.wait_condition(
                lambda: self.approved is not None or self.aborted is not None
            )
            if self.aborted is not None:
                raise AbortedError(self.aborted.reason)
            assert self.approved is not None
            step.detail = {"by": self.approved.actor, "reason": self.approved.reason}
        elif step.name in ("hot_path_view", "hot_path_after"):
            step.detail = await self._status()
        elif step.name == "venue_view":
            req = VenueRequest(inp.market)
            balances = await workflow.execute_activity_method(
                VenueActivities.balances,
                req,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RETRY,
            )
            step.detail = {
                "balances": asdict(balances),
                "open_orders": await workflow.execute_activity_method(
                    VenueActivities.open_orders,
                    req,
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=RETRY,
                ),
            }
        elif step.name == "compare":
            hot = self.steps[0].detail
            venue = self.steps[1].detail
            step.detail = {
                "hot_path_open_orders": hot.get("open_orders"),
                "venue_open_orders": venue.get("open_orders"),
                "orders_match": hot.get("open_orders") == venue.get("open_orders"),
                "position_lots": hot.get("position_lots"),
                "venue_balances": venue.get("balances", {}).get("balances"),
            }
        elif step.name == "reduce_only":
            step.detail = await self._hot("flatten", {})
        elif step.name == "wait_flat":
            waited = 0.0
            while True:
                st = await self._status()
                if abs(int(st.get("position_lots", 0))) <= inp.flat_lots:
                    step.detail = {"position_lots": st.get("position_lots"), "waited_s": waited}
                    break
                if waited >= inp.flatten_timeout_s or self.aborted is not None:
                    raise RuntimeError(f"still {st.get('position_lots')} lots after {waited}s")
                await workflow.sleep(timedelta(seconds=inp.poll_s))
                waited += inp.poll_s
        elif step.name == "fail_over":
            step.detail = await self._hot("feed_failover", {})
        elif step.name in ("stop", "start"):
            step.detail = await self._hot(step.name, {})

    @workflow.run
    async def run(self, inp: RunbookInput) -> RunbookResult:
        outcome = "done"
        for step in self.steps:
            if self.aborted is not None:
                step.status = "aborted"
                outcome = "aborted"
                continue
            step.status = "running"
            try:
                await self._step(step)
                step.status = "done"
            except AbortedError:
                step.status = "aborted"
                outcome = "aborted"
            except (ActivityError, RuntimeError) as e:  # a failed step ends it, recorded
                step.status = "failed"
                step.detail = {"error": str(e)}
                outcome = "failed"
                break
        await workflow.execute_activity_method(
            RecordActivities.audit,
            AuditEntry(
                inp.actor,
                f"runbook:{inp.runbook}",
                inp.market,
                {"reason": inp.reason},
                outcome,
                f"{workflow.info().workflow_id}/{workflow.info().run_id}",
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
        )
        return RunbookResult(inp.runbook, inp.market, outcome, self.steps)
