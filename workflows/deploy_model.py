"""DeployModel: train (or take) a candidate, validate it against the live model on held-out
data with explicit gates (accuracy, calibration, inference latency), run it in shadow beside
the live model, promote it between two quote cycles, watch the live accuracy, and roll back
automatically if it falls below the gate. Every decision is recorded in the model registry
and the audit log. Gates fail closed (``deploy-fail-closed`` patch): a shadow model that
made no comparable prediction, or a live accuracy that could not be measured, is a failure."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.types import (
    AuditEntry,
    DeployModelInput,
    DeployModelResult,
    HotpathCommand,
    Notice,
    ValidationReport,
    host_queue,
)

with workflow.unsafe.imports_passed_through():
    from activities.hotpath import HotpathActivities
    from activities.ml import MLActivities
    from activities.records import RecordActivities

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
    non_retryable_error_types=["CommandRefused", "InvalidArtifact"],
)


FAIL_CLOSED = "deploy-fail-closed"  # v0.1.0 runs skipped the shadow gate and passed unknowns


def shadow_failures(inp: DeployModelInput, status: dict[str, Any]) -> list[str]:
    """The shadow gate, failing closed: no comparison made is a failure, not a pass."""
    sig = status.get("signal") or {}
    agreement = sig.get("shadow_agreement")
    need = inp.gates.min_shadow_agreement
    if agreement is None:
        return ["shadow agreement unknown: the shadow model made no comparable prediction"]
    if agreement < need:
        return [f"shadow agreement {agreement:.3f} < {need}"]
    return []


def gate_failures(inp: DeployModelInput, v: ValidationReport) -> list[str]:
    """Which validation gates the candidate misses (empty: it may go on)."""
    g = inp.gates
    c, live = v.candidate, v.live
    out = []
    if c.accuracy < g.min_accuracy:
        out.append(f"accuracy {c.accuracy:.3f} < {g.min_accuracy}")
    if live is not None and c.accuracy < live.accuracy - g.max_accuracy_drop:
        out.append(f"accuracy {c.accuracy:.3f} below live {live.accuracy:.3f}")
    if c.calibration_error > g.max_calibration_error:
        out.append(f"calibration error {c.calibration_error:.3f} > {g.max_calibration_error}")
    if c.latency_p99_us > g.max_latency_p99_us:
        out.append(f"latency p99 {c.latency_p99_us:.0f} µs > {g.max_latency_p99_us:.0f}")
    return out


@workflow.defn(name="DeployModel")
class DeployModel:
    def __init__(self) -> None:
        self.phase = "starting"
        self._commands = 0  # numbers each hot-path command of this run: ids never repeat

    @workflow.query
    def current_phase(self) -> str:
        return self.phase

    async def _hot(
        self, inp: DeployModelInput, command: str, args: dict[str, Any]
    ) -> dict[str, Any]:
        self._commands += 1
        tag = f"{_run_tag()}/{self._commands}/{command}"
        return await workflow.execute_activity_method(
            HotpathActivities.command,
            HotpathCommand(inp.market, tag, command, args),
            task_queue=host_queue(inp.market),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RETRY,
        )

    async def _status(self, inp: DeployModelInput) -> dict[str, Any]:
        return await workflow.execute_activity_method(
            HotpathActivities.status,
            inp.market,
            task_queue=host_queue(inp.market),
            start_to_close_timeout=timedelta(seconds=30),
            schedule_to_close_timeout=timedelta(minutes=5),
            retry_policy=RETRY,
        )

    async def _record(
        self, inp: DeployModelInput, path: str, status: str, metrics: dict[str, Any]
    ) -> None:
        await workflow.execute_activity_method(
            MLActivities.record,
            args=[path, status, metrics],
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
        )

    @workflow.run
    async def run(self, inp: DeployModelInput) -> DeployModelResult:
        wid = _run_tag()  # a redeploy under the same workflow id is a new deployment
        self.phase = "candidate"
        path = await workflow.execute_activity_method(
            MLActivities.candidate,
            inp,
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RETRY,
        )
        self.phase = "validate"
        status = await workflow.execute_activity_method(
            HotpathActivities.status,
            inp.market,
            task_queue=host_queue(inp.market),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
        )
        live_path = str(status.get("model", {}).get("path", ""))
        report: ValidationReport = await workflow.execute_activity_method(
            MLActivities.validate,
            args=[path, live_path, inp],
            start_to_close_timeout=timedelta(hours=1),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RETRY,
        )
        validation = asdict(report)
        version = report.candidate.version
        reasons = gate_failures(inp, report)
        outcome = "rejected"
        live: dict[str, Any] = {}
        fail_closed = workflow.patched(FAIL_CLOSED)
        if not reasons:
            self.phase = "shadow"
            await self._hot(inp, "shadow_model", {"path": path})
            await workflow.sleep(timedelta(seconds=inp.shadow_s))
            if fail_closed:
                reasons = shadow_failures(inp, await self._status(inp))
        if not reasons:
            self.phase = "promote"
            await self._hot(inp, "load_model", {"path": path, "version": version})
            outcome = "promoted"
            self.phase = "monitor"
            await workflow.sleep(timedelta(seconds=inp.monitor_s))
            st = await self._status(inp)
            live = dict(st.get("signal", {}))
            acc = live.get("accuracy", {}).get("200ms")
            if acc is None and fail_closed:  # nothing measured is not a pass
                reasons.append("live accuracy unknown after the monitoring window")
            if acc is not None and acc < inp.gates.min_live_accuracy:
                reasons.append(f"live accuracy {acc:.3f} < {inp.gates.min_live_accuracy}")
            if reasons:
                self.phase = "rollback"
                await self._hot(inp, "rollback_model", {})
                outcome = "rolled_back"
        self.phase = "record"
        await self._record(inp, path, outcome, {"validation": validation, "live": live})
        await workflow.execute_activity_method(
            RecordActivities.audit,
            AuditEntry(
                inp.actor,
                "deploy_model",
                inp.market,
                {"candidate": version, "path": path},
                outcome,
                wid,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
        )
        await workflow.execute_activity_method(
            RecordActivities.notify,
            Notice(
                f"Model {version} {outcome} on {inp.market}",
                "; ".join(reasons) or "all gates passed",
                "warning" if outcome != "promoted" else "info",
                wid,
            ),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
        self.phase = "done"
        return DeployModelResult(inp.market, path, version, outcome, reasons, validation, live)


def _run_tag() -> str:
    info = workflow.info()
    return f"{info.workflow_id}/{info.run_id}"
