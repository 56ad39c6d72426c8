"""TradingLifecycle: transitions through validated updates, the hot-path command each one
sends (pinned to the host queue, idempotent id), status queries, search attributes."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from workflows.lifecycle import TradingLifecycle
from workflows.types import (
    CONTROL_QUEUE,
    ChangeRequest,
    HotpathCommand,
    LifecycleInput,
    LifecycleStatus,
    host_queue,
    lifecycle_id,
)

MARKET = "SEI/USDC"


class FakeHotpath:
    """The hot path's side of the activity contract: records commands, can refuse."""

    def __init__(self) -> None:
        self.commands: list[HotpathCommand] = []
        self.refuse: set[str] = set()

    @activity.defn(name="hotpath_command")
    async def command(self, cmd: HotpathCommand) -> dict[str, Any]:
        self.commands.append(cmd)
        if cmd.command in self.refuse:
            raise ApplicationError("refused", type="CommandRefused", non_retryable=True)
        return {"command": cmd.command, "applied": True}


async def _start(env: WorkflowEnvironment, state: str = "STOPPED") -> Any:
    return await env.client.start_workflow(
        TradingLifecycle.run,
        LifecycleInput(MARKET, state),
        id=lifecycle_id(MARKET),
        task_queue=CONTROL_QUEUE,
    )


async def test_transitions_and_commands(any_env: WorkflowEnvironment) -> None:
    env = any_env
    hot = FakeHotpath()
    async with (
        Worker(env.client, task_queue=CONTROL_QUEUE, workflows=[TradingLifecycle]),
        Worker(env.client, task_queue=host_queue(MARKET), activities=[hot.command]),
    ):
        h = await _start(env)
        st: LifecycleStatus = await h.execute_update(
            TradingLifecycle.start, ChangeRequest("alice", "open")
        )
        assert st.state == "TRADING" and st.changes == 1
        st = await h.execute_update(TradingLifecycle.halt, ChangeRequest("bob", "news"))
        assert st.state == "HALTED" and st.reason == "news"
        # invalid transitions are refused by the validator: nothing reaches the hot path
        n = len(hot.commands)
        for update in (TradingLifecycle.start, TradingLifecycle.set_params):
            with pytest.raises(WorkflowUpdateFailedError):
                await h.execute_update(update, ChangeRequest(params={"quoting": {"gamma": 1}}))
        assert len(hot.commands) == n
        st = await h.execute_update(TradingLifecycle.resume, ChangeRequest("bob", "clear"))
        assert st.state == "TRADING"
        st = await h.execute_update(
            TradingLifecycle.set_params, ChangeRequest(params={"quoting": {"gamma": 0.2}})
        )
        assert st.params == {"quoting": {"gamma": 0.2}}
        q: LifecycleStatus = await h.query(TradingLifecycle.status)
        assert q.state == "TRADING" and q.changes == 4
        assert [c.command for c in hot.commands] == ["start", "halt", "resume", "set_params"]
        assert len({c.command_id for c in hot.commands}) == 4
        assert all(c.command_id.startswith(f"market/{MARKET}/") for c in hot.commands)
        assert hot.commands[1].args["reason"] == "news"


async def test_validators_reject_bad_params(time_env: WorkflowEnvironment) -> None:
    hot = FakeHotpath()
    async with (
        Worker(time_env.client, task_queue=CONTROL_QUEUE, workflows=[TradingLifecycle]),
        Worker(time_env.client, task_queue=host_queue(MARKET), activities=[hot.command]),
    ):
        h = await _start(time_env, "TRADING")
        for bad in ({}, {"other": {"x": 1}}, {"quoting": {}}, {"risk": {"max_drawdown": -5}}):
            with pytest.raises(WorkflowUpdateFailedError) as e:
                await h.execute_update(TradingLifecycle.set_params, ChangeRequest(params=bad))
            assert "params" in str(e.value.cause)
        with pytest.raises(WorkflowUpdateFailedError):
            await h.execute_update(TradingLifecycle.resume, ChangeRequest())
        assert hot.commands == []


async def test_a_refused_command_leaves_the_state(time_env: WorkflowEnvironment) -> None:
    hot = FakeHotpath()
    hot.refuse.add("start")
    async with (
        Worker(time_env.client, task_queue=CONTROL_QUEUE, workflows=[TradingLifecycle]),
        Worker(time_env.client, task_queue=host_queue(MARKET), activities=[hot.command]),
    ):
        h = await _start(time_env)
        with pytest.raises(WorkflowUpdateFailedError):
            await h.execute_update(TradingLifecycle.start, ChangeRequest())
        assert (await h.query(TradingLifecycle.status)).state == "STOPPED"


async def test_search_attributes_find_halted_markets(dev_env: WorkflowEnvironment) -> None:
    hot = FakeHotpath()
    async with (
        Worker(dev_env.client, task_queue=CONTROL_QUEUE, workflows=[TradingLifecycle]),
        Worker(dev_env.client, task_queue=host_queue(MARKET), activities=[hot.command]),
    ):
        h = await _start(dev_env)
        await h.execute_update(TradingLifecycle.halt, ChangeRequest(reason="x"))
        desc = await h.describe()
        attrs = {p.key.name: p.value for p in desc.typed_search_attributes}
        assert attrs["Market"] == MARKET and attrs["TradingState"] == "HALTED"
        # what the Temporal UI's "all halted markets" view runs
        for _ in range(50):
            found = [
                w.id
                async for w in dev_env.client.list_workflows(
                    "WorkflowType = 'TradingLifecycle' AND TradingState = 'HALTED'"
                )
            ]
            if found:
                break
            await asyncio.sleep(0.1)
        assert found == [lifecycle_id(MARKET)]


async def test_continue_as_new_keeps_the_state(time_env: WorkflowEnvironment) -> None:
    hot = FakeHotpath()
    wid = f"market/{uuid.uuid4().hex}"
    async with (
        Worker(time_env.client, task_queue=CONTROL_QUEUE, workflows=[TradingLifecycle]),
        Worker(time_env.client, task_queue=host_queue(MARKET), activities=[hot.command]),
    ):
        h = await time_env.client.start_workflow(
            TradingLifecycle.run,
            LifecycleInput(MARKET, "HALTED", {"risk": {"a": 1}}, "x", 7),
            id=wid,
            task_queue=CONTROL_QUEUE,
        )
        st = await h.query(TradingLifecycle.status)
        assert (st.state, st.params, st.changes) == ("HALTED", {"risk": {"a": 1}}, 7)


async def test_a_stop_supersedes_the_last_answer_it_holds(time_env: WorkflowEnvironment) -> None:
    """After an emergency stop halted the hot path directly, the status no longer shows the
    hot path's earlier "trading" answer next to HALTED."""
    hot = FakeHotpath()
    async with (
        Worker(time_env.client, task_queue=CONTROL_QUEUE, workflows=[TradingLifecycle]),
        Worker(time_env.client, task_queue=host_queue(MARKET), activities=[hot.command]),
    ):
        h = await _start(time_env)
        st = await h.execute_update(TradingLifecycle.start, ChangeRequest("alice", "open"))
        assert st.hotpath == {"command": "start", "applied": True}
        await h.signal(TradingLifecycle.halted_by_emergency_stop, "drill")
        st = await h.query(TradingLifecycle.status)
        assert st.state == "HALTED"
        assert st.hotpath["state"] == "halted" and st.hotpath["reason"] == "drill"
