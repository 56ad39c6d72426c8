"""Recorded histories of every workflow replay against today's code: a non-deterministic
change fails the build (regenerate with ``record_histories`` only for intended changes)."""

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

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_every_workflow_has_a_recorded_history() -> None:
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


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
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
