"""DailyRiskReset: at the configured time, snapshot each market's daily figures, reset the
daily loss counters and re-arm the breakers that may re-arm (a hot path halted by an
operator or an emergency stop stays halted), then report."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.types import HotpathCommand, Notice, RiskResetInput, RiskResetResult, host_queue

with workflow.unsafe.imports_passed_through():
    from activities.hotpath import HotpathActivities
    from activities.records import RecordActivities


@workflow.defn(name="DailyRiskReset")
class DailyRiskReset:
    @workflow.run
    async def run(self, inp: RiskResetInput) -> RiskResetResult:
        day = workflow.now().date().isoformat()
        out: dict[str, dict[str, Any]] = {}
        for market in inp.markets:
            try:
                answer = await workflow.execute_activity_method(
                    HotpathActivities.command,
                    HotpathCommand(market, f"risk-reset/{day}/{market}", "daily_reset", {}),
                    task_queue=host_queue(market),
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=RetryPolicy(
                        maximum_attempts=5, non_retryable_error_types=["CommandRefused"]
                    ),
                )
                out[market] = answer.get("detail", {})
            except ActivityError as e:
                out[market] = {"error": str(e.cause or e)}
        lines = [f"{m}: {d}" for m, d in out.items()]
        await workflow.execute_activity_method(
            RecordActivities.notify,
            Notice(f"Daily risk reset {day}", "\n".join(lines), "info", f"risk-reset/{day}"),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
        return RiskResetResult(out)
