"""Runbooks: steps an operator can watch, approval and abort through Updates."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from workflows.runbooks import Runbook
from workflows.types import (
    CONTROL_QUEUE,
    AuditEntry,
    Decision,
    HotpathCommand,
    RunbookInput,
    VenueRequest,
    host_queue,
)

MARKET = "SEI/USDC"


class Fakes:
    def __init__(self, positions: list[int]) -> None:
        self.positions = positions
        self.commands: list[str] = []
        self.audits: list[AuditEntry] = []

    @activity.defn(name="hotpath_command")
    async def command(self, cmd: HotpathCommand) -> dict[str, Any]:
        self.commands.append(cmd.command)
        return {"applied": True, "command": cmd.command}

    @activity.defn(name="hotpath_status")
    async def status(self, market: str) -> dict[str, Any]:
        pos = self.positions.pop(0) if len(self.positions) > 1 else self.positions[0]
        return {"position_lots": pos, "open_orders": 4}

    @activity.defn(name="venue_balances")
    async def balances(self, req: VenueRequest) -> dict[str, Any]:
        return {"address": "sei1x", "balances": {"usei": 10}}

    @activity.defn(name="venue_open_orders")
    async def open_orders(self, req: VenueRequest) -> int:
        return 3

    @activity.defn(name="audit")
    async def audit(self, entry: AuditEntry) -> str:
        self.audits.append(entry)
        return "h"


def _workers(env: WorkflowEnvironment, f: Fakes) -> tuple[Worker, Worker]:
    return (
        Worker(
            env.client,
            task_queue=CONTROL_QUEUE,
            workflows=[Runbook],
            activities=[f.balances, f.open_orders, f.audit],
        ),
        Worker(env.client, task_queue=host_queue(MARKET), activities=[f.command, f.status]),
    )


async def _waiting(h: Any, step: str) -> None:
    for _ in range(200):
        steps = await h.query(Runbook.progress)
        if any(s.name == step and s.status == "waiting_approval" for s in steps):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{step} never waited for approval")


async def test_reconcile_reports_a_mismatch_without_approval(dev_env: WorkflowEnvironment) -> None:
    f = Fakes([100])
    a, b = _workers(dev_env, f)
    async with a, b:
        res = await dev_env.client.execute_workflow(
            Runbook.run,
            RunbookInput("reconcile", MARKET),
            id="rb-reconcile",
            task_queue=CONTROL_QUEUE,
        )
    assert res.outcome == "done"
    compare = res.steps[-1].detail
    assert compare["orders_match"] is False
    assert (compare["hot_path_open_orders"], compare["venue_open_orders"]) == (4, 3)
    assert f.commands == [] and f.audits[0].action == "runbook:reconcile"


async def test_flatten_waits_for_approval_then_reduces_until_flat(
    dev_env: WorkflowEnvironment,
) -> None:
    f = Fakes([500, 500, 200, 0])
    a, b = _workers(dev_env, f)
    async with a, b:
        h = await dev_env.client.start_workflow(
            Runbook.run,
            RunbookInput("flatten", MARKET, flatten_timeout_s=60, poll_s=0.1),
            id="rb-flatten",
            task_queue=CONTROL_QUEUE,
        )
        await _waiting(h, "approve")
        assert f.commands == []  # nothing happens before a human says so
        with pytest.raises(WorkflowUpdateFailedError):
            await h.execute_update(Runbook.approve, Decision("reduce_only", "eve"))
        await h.execute_update(Runbook.approve, Decision("approve", "eve", "go"))
        res = await h.result()
    assert res.outcome == "done" and f.commands == ["flatten"]
    assert res.steps[1].detail == {"by": "eve", "reason": "go"}
    assert res.steps[-1].detail["position_lots"] == 0


async def test_abort_at_the_approval_step_changes_nothing(dev_env: WorkflowEnvironment) -> None:
    f = Fakes([0])
    a, b = _workers(dev_env, f)
    async with a, b:
        h = await dev_env.client.start_workflow(
            Runbook.run,
            RunbookInput("restart_hotpath", MARKET),
            id="rb-restart",
            task_queue=CONTROL_QUEUE,
        )
        await _waiting(h, "approve")
        await h.execute_update(Runbook.abort, Decision("approve", "eve", "not now"))
        res = await h.result()
    assert res.outcome == "aborted" and f.commands == []
    assert [s.status for s in res.steps] == ["aborted", "aborted", "aborted", "aborted"]
    assert f.audits[0].outcome == "aborted"


def _doc_table() -> dict[str, list[str]]:
    """docs/runbook.md's runbook table: runbook -> its steps, in order."""
    import re
    from pathlib import Path

    lines = (Path(__file__).parents[2] / "docs" / "runbook.md").read_text().splitlines()
    header = lines.index("| runbook | steps | what it does |")
    rows: dict[str, list[str]] = {}
    for line in lines[header + 2 :]:
        if not line.startswith("|"):
            break
        name_cell, steps_cell = (c.strip() for c in line.strip("|").split("|")[:2])
        name = re.fullmatch(r"`(\w+)`", name_cell)
        assert name is not None, f"not a runbook name: {name_cell!r}"
        assert name[1] not in rows, f"{name[1]} twice in the table"
        steps = re.findall(r"`(\w+)`", steps_cell)
        assert " → ".join(f"`{s}`" for s in steps) == steps_cell, steps_cell
        rows[name[1]] = steps
    return rows


def test_the_runbook_doc_names_every_runbook_with_its_steps() -> None:
    """The operator's table cannot drift from what the workflow runs: the same runbooks,
    each with its steps in order."""
    from workflows.types import PLANS, RUNBOOKS

    assert set(PLANS) == set(RUNBOOKS)
    assert _doc_table() == PLANS
