"""The replay corpus: histories recorded from every released version (``histories/<version>/``)
replay against today's code, with the payload codec. The corpus only grows: a change to a
running workflow goes behind ``workflow.patched`` so old histories keep replaying; new
histories are recorded into the next version's folder (``record_histories``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from flashmm.temporal.client import encrypting
from tests.workflows.record_histories import corpus_codec
from workers.run import WORKFLOWS

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
    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=encrypting(corpus_codec()))
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


def test_every_hosted_workflow_type_is_in_the_corpus() -> None:
    """A new workflow type cannot ship without a recorded history."""
    types = set()
    for p in HISTORIES:
        first = WorkflowHistory.from_json(p.stem, p.read_text()).events[0]
        types.add(first.workflow_execution_started_event_attributes.workflow_type.name)
    assert {w.__temporal_workflow_definition.name for w in WORKFLOWS} <= types  # type: ignore[attr-defined]


def test_the_corpus_is_encrypted_like_production_history() -> None:
    newest = sorted(p for p in HISTORIES if p.parent.name != "v0.1.0")
    # metadata is base64 in the JSON: "binary/encrypted", the codec's encoding
    assert newest and all("YmluYXJ5L2VuY3J5cHRlZA" in p.read_text() for p in newest)
