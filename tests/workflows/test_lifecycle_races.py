"""TradingLifecycle under concurrency and over long lives: a halt always wins over a change
that was on its way, and continue-as-new carries everything (state, params, the hot path's
last answer, the search attributes)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.workflows.test_lifecycle import MARKET, FakeHotpath
from workflows.lifecycle import STATE, TradingLifecycle
from workflows.types import (
    CONTROL_QUEUE,
    HALTED,
    TRADING,
    ChangeRequest,
    HotpathCommand,
    LifecycleInput,
    host_queue,
    lifecycle_id,
)


class GatedHotpath(FakeHotpath):
    """Holds ``gated`` commands until released, so a signal can land meanwhile."""

    def __init__(self, gated: str) -> None:
        super().__init__()
        self.gated = gated
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    @activity.defn(name="hotpath_command")
    async def command(self, cmd: HotpathCommand) -> dict[str, Any]:
        if cmd.command == self.gated:
            self.entered.set()
            await self.release.wait()
        return await super().command(cmd)


@pytest.mark.parametrize("change", ["set_params", "rollback_model", "start"])
async def test_an_emergency_stop_during_a_change_is_never_undone(
    dev_env: WorkflowEnvironment, change: str
) -> None:
    env = dev_env
    hot = GatedHotpath(change)
    start_state = "STOPPED" if change == "start" else TRADING
    async with (
        Worker(env.client, task_queue=CONTROL_QUEUE, workflows=[TradingLifecycle]),
        Worker(env.client, task_queue=host_queue(MARKET), activities=[hot.command]),
    ):
        h = await env.client.start_workflow(
            TradingLifecycle.run,
            LifecycleInput(MARKET, start_state),
            id=lifecycle_id(MARKET),
            task_queue=CONTROL_QUEUE,
        )
        req = ChangeRequest("alice", "tweak", {"quoting": {"gamma": 0.2}})
        update = asyncio.create_task(h.execute_update(change, req))
        await asyncio.wait_for(hot.entered.wait(), 10)
        await h.signal(TradingLifecycle.halted_by_emergency_stop, "emergency stop: incident")
        hot.release.set()
        await update
        status = await h.query(TradingLifecycle.status)
        desc = await h.describe()
        await h.terminate()
    assert status.state == HALTED and status.reason == "emergency stop: incident"
    assert desc.typed_search_attributes.get(STATE) == HALTED
    if change == "start":
        # the start reached the hot path after the stop's halt: a halt follows it
        assert [c.command for c in hot.commands][-2:] == ["start", "halt"]
        assert hot.commands[-1].command_id.endswith("/halt-wins")


async def test_continue_as_new_carries_everything(dev_env: WorkflowEnvironment) -> None:
    env = dev_env
    hot = FakeHotpath()
    async with (
        Worker(env.client, task_queue=CONTROL_QUEUE, workflows=[TradingLifecycle]),
        Worker(env.client, task_queue=host_queue(MARKET), activities=[hot.command]),
    ):
        h = await env.client.start_workflow(
            TradingLifecycle.run,
            LifecycleInput(MARKET, max_changes_per_run=2),
            id=lifecycle_id(MARKET),
            task_queue=CONTROL_QUEUE,
        )
        first_run = (await h.describe()).run_id
        await h.execute_update(TradingLifecycle.start, ChangeRequest("alice", "open"))
        await h.execute_update(
            TradingLifecycle.set_params,
            ChangeRequest("alice", "wider", {"quoting": {"gamma": 0.3}}),
        )
        latest = env.client.get_workflow_handle(lifecycle_id(MARKET))
        for _ in range(100):  # the run continues as new once its handlers are done
            d = await latest.describe()
            if d.run_id != first_run and d.status == WorkflowExecutionStatus.RUNNING:
                break
            await asyncio.sleep(0.1)
        assert d.run_id != first_run
        status = await latest.query(TradingLifecycle.status)
        assert status.state == TRADING and status.changes == 2
        assert status.params == {"quoting": {"gamma": 0.3}}
        assert status.hotpath == {"command": "set_params", "applied": True}
        # and it still works after the hand-over
        after = await latest.execute_update(TradingLifecycle.halt, ChangeRequest("bob", "news"))
        assert after.state == HALTED and after.changes == 3
        await latest.terminate()
