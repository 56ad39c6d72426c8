"""TradingLifecycle: one long-lived workflow per market (id ``market/<symbol>``) holding the
market's desired state — STOPPED, TRADING or HALTED — and its parameters.

Operators change it with Updates; each has a validator that refuses an invalid transition
(the market state machine, ``flashmm.domain.market_state``, read as an operator's request)
before anything is written to history. The handler tells the hot path (an activity pinned
to the market's host queue, with a command id derived from the update id so a retried
activity is applied once), then records the new state, which search attributes expose to
the Temporal UI ("all halted markets"). The history is continued-as-new when it grows,
carrying state, parameters and the hot path's last answer.

A halt always wins: an emergency stop's signal that lands while an update is waiting on the
hot path is never overwritten when that update finishes; a start or resume that raced it is
followed by a fresh halt command, so the hot path ends halted too (``halt-wins`` patch).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, VersioningBehavior

from flashmm.domain import market_state
from flashmm.domain.market_state import Command, MarketState, Refusal
from workflows.types import (
    HALTED,
    STOPPED,
    TRADING,
    ChangeRequest,
    HotpathCommand,
    LifecycleInput,
    LifecycleStatus,
    host_queue,
)

with workflow.unsafe.imports_passed_through():
    from activities.hotpath import HotpathActivities

MARKET = SearchAttributeKey.for_keyword("Market")
STATE = SearchAttributeKey.for_keyword("TradingState")
HOTPATH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=10,
    non_retryable_error_types=["CommandRefused"],
)


@workflow.defn(name="TradingLifecycle")
class TradingLifecycle:
    @workflow.init
    def __init__(self, inp: LifecycleInput) -> None:
        self.market = inp.market
        self.state = inp.state
        self.reason = inp.reason
        self.params = dict(inp.params)
        self.changes = inp.changes
        self.hotpath: dict[str, Any] = dict(inp.hotpath)
        self._first_change = inp.changes
        self._max_changes = inp.max_changes_per_run
        self._halts = 0  # halts seen in this run (updates and emergency stops)

    @workflow.run
    async def run(self, inp: LifecycleInput) -> None:
        workflow.upsert_search_attributes(
            [MARKET.value_set(self.market), STATE.value_set(self.state)]
        )
        await workflow.wait_condition(
            lambda: (
                workflow.info().is_continue_as_new_suggested()
                or self.changes - self._first_change >= self._max_changes
            )
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            LifecycleInput(
                self.market,
                self.state,
                self.params,
                self.reason,
                self.changes,
                self.hotpath,
                self._max_changes,
            )
        )

    # --- queries ------------------------------------------------------------------------
    @workflow.query
    def status(self) -> LifecycleStatus:
        return LifecycleStatus(
            self.market, self.state, self.reason, self.params, self.changes, self.hotpath
        )

    # --- updates ------------------------------------------------------------------------
    def _refused(self, action: str) -> Refusal | None:
        """The market state machine's refusal of an operator's request here (None: allowed)."""
        out = market_state.request(MarketState.from_lifecycle(self.state), Command(action))
        return out if isinstance(out, Refusal) else None

    def _check(self, action: str) -> None:
        if self._refused(action) is not None:
            raise ValueError(f"cannot {action} market {self.market}: it is {self.state}")

    async def _apply(
        self,
        action: str,
        command: str,
        req: ChangeRequest,
        new_state: str,
        args: dict[str, Any] | None = None,
    ) -> LifecycleStatus:
        info = workflow.current_update_info()
        command_id = f"{workflow.info().workflow_id}/{info.id if info else workflow.uuid4()}"
        halts = self._halts
        if new_state == HALTED:
            self._halts += 1
        self.hotpath = await self._command(
            command_id, command, {"reason": req.reason, **(args or {})}
        )
        if self._halts != halts and new_state != HALTED and workflow.patched("halt-wins"):
            # halted while this change was on its way: the halt stands
            if command in ("start", "resume"):
                self.hotpath = await self._command(
                    f"{command_id}/halt-wins", "halt", {"reason": self.reason}
                )
            self.changes += 1
            return self.status()
        self.state = new_state
        self.reason = req.reason
        self.changes += 1
        workflow.upsert_search_attributes([STATE.value_set(self.state)])
        return self.status()

    async def _command(self, command_id: str, command: str, args: dict[str, Any]) -> dict[str, Any]:
        return await workflow.execute_activity_method(
            HotpathActivities.command,
            HotpathCommand(self.market, command_id, command, args),
            task_queue=host_queue(self.market),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=HOTPATH_RETRY,
        )

    @workflow.update
    async def start(self, req: ChangeRequest) -> LifecycleStatus:
        return await self._apply("start", "start", req, TRADING)

    @start.validator
    def _validate_start(self, req: ChangeRequest) -> None:
        self._check("start")

    @workflow.update
    async def stop(self, req: ChangeRequest) -> LifecycleStatus:
        return await self._apply("stop", "stop", req, STOPPED)

    @stop.validator
    def _validate_stop(self, req: ChangeRequest) -> None:
        self._check("stop")

    @workflow.update
    async def halt(self, req: ChangeRequest) -> LifecycleStatus:
        return await self._apply("halt", "halt", req, HALTED)

    @halt.validator
    def _validate_halt(self, req: ChangeRequest) -> None:
        self._check("halt")

    @workflow.update
    async def resume(self, req: ChangeRequest) -> LifecycleStatus:
        return await self._apply("resume", "resume", req, TRADING)

    @resume.validator
    def _validate_resume(self, req: ChangeRequest) -> None:
        self._check("resume")

    @workflow.update
    async def set_params(self, req: ChangeRequest) -> LifecycleStatus:
        await self._apply("set_params", "set_params", req, self.state, req.params)
        for section, values in req.params.items():
            self.params.setdefault(section, {}).update(values)
        return self.status()

    @set_params.validator
    def _validate_set_params(self, req: ChangeRequest) -> None:
        if self._refused("set_params") is not None:
            raise ValueError(f"market {self.market} is {self.state}: resume it before changing it")
        unknown = set(req.params) - {"quoting", "risk"}
        if unknown or not req.params:
            raise ValueError("params must hold 'quoting' and/or 'risk' sections")
        for section, values in req.params.items():
            if not isinstance(values, dict) or not values:
                raise ValueError(f"params.{section} must be a non-empty object")
            for k, v in values.items():
                # the hot path checks each value against its bounds (the configured risk
                # limits are ceilings); here only what can never be right is refused
                if isinstance(v, bool) or not isinstance(v, int | float | str):
                    raise ValueError(f"params.{section}.{k} must be a number or a name")
                if isinstance(v, int | float) and not (-(2**63) < v < 2**63 and v == v):
                    raise ValueError(f"params.{section}.{k} must be a finite number")
                if isinstance(v, int | float) and v < 0:
                    raise ValueError(f"params.{section}.{k} must not be negative")

    @workflow.update
    async def rollback_model(self, req: ChangeRequest) -> LifecycleStatus:
        """Put the previous model back (the hot path refuses when there is none)."""
        return await self._apply("rollback_model", "rollback_model", req, self.state)

    @rollback_model.validator
    def _validate_rollback_model(self, req: ChangeRequest) -> None:
        self._check("rollback_model")

    @workflow.signal
    def halted_by_emergency_stop(self, reason: str) -> None:
        """EmergencyStop halted the hot path itself: record it here too."""
        self._halts += 1
        self.state = HALTED
        self.reason = reason
        self.changes += 1
        # the last hot-path answer this workflow holds (its own last command's, e.g. a start
        # saying trading) is superseded: the stop halted the hot path directly. State only,
        # no command, so running histories replay unchanged.
        self.hotpath = {"state": MarketState.HALTED.value, "reason": reason, "by": "emergency stop"}
        workflow.upsert_search_attributes([STATE.value_set(self.state)])


# never completes: on versioned workers it moves to each new version (auto-upgrade), so every
# change to it must replay its running history (workflow.patched). A separate declaration
# because the server refuses a versioning behavior from unversioned workers.
@workflow.defn(name="TradingLifecycle", versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class TradingLifecycleAutoUpgrade(TradingLifecycle):
    """TradingLifecycle as registered on a versioned control worker."""

    @workflow.init
    def __init__(self, inp: LifecycleInput) -> None:
        super().__init__(inp)

    @workflow.run
    async def run(self, inp: LifecycleInput) -> None:
        await super().run(inp)
