"""DeployModel: gates before promotion, shadow then promote, automatic rollback when the
live accuracy falls below the gate, and the record of each decision."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from workflows.deploy_model import DeployModel
from workflows.types import (
    CONTROL_QUEUE,
    AuditEntry,
    DeployModelInput,
    HotpathCommand,
    ModelGates,
    Notice,
    host_queue,
)

MARKET = "SEI/USDC"


class Fakes:
    def __init__(
        self,
        candidate: dict[str, Any],
        live_accuracy: float | None = 0.6,
        shadow_agreement: float | None = 0.9,
    ) -> None:
        self.candidate = candidate
        self.live_accuracy = live_accuracy
        self.shadow_agreement = shadow_agreement
        self.commands: list[str] = []
        self.records: list[tuple[str, str]] = []
        self.audits: list[AuditEntry] = []

    @activity.defn(name="ml_candidate")
    async def ml_candidate(self, inp: DeployModelInput) -> str:
        return inp.artifact_path or "/models/new"

    @activity.defn(name="ml_validate")
    async def ml_validate(self, candidate: str, live: str, inp: DeployModelInput) -> dict[str, Any]:
        return {
            "candidate": {"version": "v2", **self.candidate},
            "live": {
                "version": "v1",
                "accuracy": 0.60,
                "calibration_error": 0.01,
                "latency_p99_us": 600.0,
            }
            if live
            else None,
        }

    @activity.defn(name="hotpath_command")
    async def command(self, cmd: HotpathCommand) -> dict[str, Any]:
        self.commands.append(cmd.command)
        return {"applied": True}

    @activity.defn(name="hotpath_status")
    async def status(self, market: str) -> dict[str, Any]:
        return {
            "model": {"path": "/models/live"},
            "signal": {
                "accuracy": {"200ms": self.live_accuracy},
                "shadow_agreement": self.shadow_agreement,
            },
        }

    @activity.defn(name="model_registry_record")
    async def record(self, path: str, status: str, metrics: dict[str, Any]) -> None:
        self.records.append((path, status))

    @activity.defn(name="audit")
    async def audit(self, entry: AuditEntry) -> str:
        self.audits.append(entry)
        return "h"

    @activity.defn(name="notify")
    async def notify(self, notice: Notice) -> bool:
        return True


GOOD = {"accuracy": 0.64, "calibration_error": 0.01, "latency_p99_us": 700.0}


async def _run(env: WorkflowEnvironment, f: Fakes, inp: DeployModelInput) -> Any:
    async with (
        Worker(
            env.client,
            task_queue=CONTROL_QUEUE,
            workflows=[DeployModel],
            activities=[f.ml_candidate, f.ml_validate, f.record, f.audit, f.notify],
        ),
        Worker(env.client, task_queue=host_queue(MARKET), activities=[f.command, f.status]),
    ):
        return await env.client.execute_workflow(
            DeployModel.run, inp, id="deploy-test", task_queue=CONTROL_QUEUE
        )


async def test_passes_gates_shadows_promotes_and_stays(time_env: WorkflowEnvironment) -> None:
    f = Fakes(GOOD, live_accuracy=0.61)
    res = await _run(time_env, f, DeployModelInput(MARKET, shadow_s=600, monitor_s=3600))
    assert res.outcome == "promoted" and res.reasons == []
    assert f.commands == ["shadow_model", "load_model"]
    assert f.records == [("/models/new", "promoted")]
    assert f.audits[0].outcome == "promoted"


async def test_each_gate_rejects_before_anything_reaches_the_hot_path(
    time_env: WorkflowEnvironment,
) -> None:
    cases = [
        ({**GOOD, "accuracy": 0.50}, "accuracy 0.500 <"),
        ({**GOOD, "accuracy": 0.58}, "below live"),
        ({**GOOD, "calibration_error": 0.2}, "calibration error"),
        ({**GOOD, "latency_p99_us": 4000.0}, "latency p99"),
    ]
    for candidate, reason in cases:
        f = Fakes(candidate)
        res = await _run(time_env, f, DeployModelInput(MARKET, gates=ModelGates()))
        assert res.outcome == "rejected"
        assert any(reason in r for r in res.reasons), (reason, res.reasons)
        assert f.commands == []
        assert f.records == [("/models/new", "rejected")]


async def test_rolls_back_when_live_accuracy_falls(time_env: WorkflowEnvironment) -> None:
    f = Fakes(GOOD, live_accuracy=0.45)
    res = await _run(time_env, f, DeployModelInput(MARKET))
    assert res.outcome == "rolled_back"
    assert f.commands == ["shadow_model", "load_model", "rollback_model"]
    assert "live accuracy 0.450" in res.reasons[0]


@pytest.mark.parametrize(
    ("agreement", "why"),
    [(None, "shadow agreement unknown"), (0.4, "shadow agreement 0.400 < 0.7")],
)
async def test_shadow_gate_fails_closed(
    time_env: WorkflowEnvironment, agreement: float | None, why: str
) -> None:
    f = Fakes(GOOD, shadow_agreement=agreement)
    inp = DeployModelInput(MARKET, shadow_s=60, monitor_s=60)
    inp.gates.min_shadow_agreement = 0.7
    res = await _run(time_env, f, inp)
    assert res.outcome == "rejected" and why in res.reasons[0]
    assert f.commands == ["shadow_model"]  # never promoted


async def test_unmeasured_live_accuracy_rolls_back(time_env: WorkflowEnvironment) -> None:
    f = Fakes(GOOD, live_accuracy=None)
    res = await _run(time_env, f, DeployModelInput(MARKET, shadow_s=60, monitor_s=60))
    assert res.outcome == "rolled_back"
    assert res.reasons == ["live accuracy unknown after the monitoring window"]
    assert f.commands == ["shadow_model", "load_model", "rollback_model"]
