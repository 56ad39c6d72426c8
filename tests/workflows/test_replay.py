"""The replay corpus: histories recorded from every released version (``histories/<version>/``)
replay against today's code, with the payload codec. The corpus only grows: a change to a
running workflow goes behind ``workflow.patched`` so old histories keep replaying; new
histories are recorded into the next version's folder (``record_histories``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.backup import Backup, Restore
from workflows.deploy_model import DeployModel
from workflows.estop import EmergencyStop
from workflows.lifecycle import TradingLifecycle
from workflows.risk_reset import DailyRiskReset
from workflows.rotate_key import RotateSigningKey
from workflows.runbooks import Runbook

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*/*.json"))
RELEASED = sorted(p.name for p in (Path(__file__).parent / "histories").iterdir() if p.is_dir())


def test_every_workflow_has_a_recorded_history() -> None:
    assert "v0.1.0" in RELEASED  # never deleted: runs of a release may still be open
    names = {p.stem for p in HISTORIES}
    assert {
        "trading_lifecycle",
        "emergency_stop",
        "daily_risk_reset",
        "deploy_model",
        "runbook_flatten",
        "backup",
        "restore",
        "rotate_signing_key",
    } <= names


@pytest.mark.parametrize("path", HISTORIES, ids=[f"{p.parent.name}/{p.stem}" for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(
        workflows=[
            TradingLifecycle,
            EmergencyStop,
            DailyRiskReset,
            DeployModel,
            Runbook,
            Backup,
            Restore,
            RotateSigningKey,
        ]
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
