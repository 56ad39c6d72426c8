"""Recorders for the branches the first corpus did not cover (v0.2.0 on): EmergencyStop with
flatten, with a joined second stop and with failing steps; a TradingLifecycle that really
continues as new and one where a halt wins a race; DeadmanSwitch; ScheduledStart; DeployModel
failing closed. Used by ``record_histories``."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.worker import Worker

from tests.workflows.test_estop import World, workers
from tests.workflows.test_estop_robust import Broken
from tests.workflows.test_lifecycle import MARKET, FakeHotpath
from tests.workflows.test_lifecycle_races import GatedHotpath
from workflows.deadman import DeadmanInput
from workflows.estop import EmergencyStop
from workflows.lifecycle import TradingLifecycle
from workflows.scheduled import ScheduledStart, ScheduledStartInput
from workflows.starters import start_deadman, start_emergency_stop
from workflows.types import (
    CONTROL_QUEUE,
    ChangeRequest,
    EmergencyStopInput,
    LifecycleInput,
    VenueRequest,
    host_queue,
    lifecycle_id,
)

SAVE: Any = None  # record_histories' _save, set by its main (it runs as __main__)


async def _save(handle: WorkflowHandle[Any, Any], name: str) -> None:
    await SAVE(handle, name)


class FlattenWorld(World):
    @activity.defn(name="hotpath_status")
    async def status(self, market: str) -> dict[str, Any]:
        return {"position_lots": 250}

    @activity.defn(name="venue_flatten")
    async def flatten(self, req: VenueRequest) -> dict[str, Any]:
        return {"side": "sell", "lots": req.position_lots, "rest_cancelled": 0}


async def estop_flatten(env: Any) -> None:
    w = FlattenWorld({"SEI/USDC": 2})
    w.cancel_calls = 1
    control = Worker(
        env.client,
        task_queue=CONTROL_QUEUE,
        workflows=[EmergencyStop],
        activities=[*w.control_activities(), w.flatten],
    )
    host = Worker(env.client, task_queue=host_queue("SEI/USDC"), activities=[w.command, w.status])
    async with control, host:
        h = await start_emergency_stop(
            env.client,
            EmergencyStopInput(["SEI/USDC"], "flatten", flatten=True, loss_budget_usdc=10),
        )
        await h.result()
        await _save(h, "emergency_stop_flatten")


async def estop_joined(env: Any) -> None:
    w = World({"SEI/USDC": 1})
    ws = workers(env, w)
    for x in ws:
        await x.__aenter__()
    try:
        inp = EmergencyStopInput(["SEI/USDC"], "double click")
        a, _ = await asyncio.gather(
            start_emergency_stop(env.client, inp), start_emergency_stop(env.client, inp)
        )
        await a.result()
        await _save(a, "emergency_stop_joined")
    finally:
        for x in ws:
            await x.__aexit__(None, None, None)


async def estop_failures(env: Any) -> None:
    w = Broken()
    ws = workers(env, w)
    for x in ws:
        await x.__aenter__()
    try:
        h = await start_emergency_stop(
            env.client, EmergencyStopInput(["SEI/USDC", "ATOM/USDC"], "venue bug")
        )
        await h.result()
        await _save(h, "emergency_stop_failures")
    finally:
        for x in ws:
            await x.__aexit__(None, None, None)


async def lifecycle_continued(env: Any) -> None:
    client: Client = env.client
    hot = FakeHotpath()
    async with (
        Worker(client, task_queue=CONTROL_QUEUE, workflows=[TradingLifecycle]),
        Worker(client, task_queue=host_queue(MARKET), activities=[hot.command]),
    ):
        wid = lifecycle_id(f"CAN{uuid.uuid4().hex[:6]}/USDC")
        h = await client.start_workflow(
            TradingLifecycle.run,
            LifecycleInput(MARKET, max_changes_per_run=2),
            id=wid,
            task_queue=CONTROL_QUEUE,
        )
        first = client.get_workflow_handle(wid, run_id=(await h.describe()).run_id)
        await h.execute_update(TradingLifecycle.start, ChangeRequest("alice", "open"))
        await h.execute_update(TradingLifecycle.halt, ChangeRequest("bob", "news"))
        for _ in range(100):  # the first run ends by continuing as new
            if (await first.describe()).status == WorkflowExecutionStatus.CONTINUED_AS_NEW:
                break
            await asyncio.sleep(0.1)
        await _save(first, "trading_lifecycle_continued")
        await client.get_workflow_handle(wid).terminate()


async def lifecycle_halt_wins(env: Any) -> None:
    client: Client = env.client
    hot = GatedHotpath("start")
    async with (
        Worker(client, task_queue=CONTROL_QUEUE, workflows=[TradingLifecycle]),
        Worker(client, task_queue=host_queue(MARKET), activities=[hot.command]),
    ):
        wid = lifecycle_id(f"RACE{uuid.uuid4().hex[:6]}/USDC")
        h = await client.start_workflow(
            TradingLifecycle.run, LifecycleInput(MARKET), id=wid, task_queue=CONTROL_QUEUE
        )
        update = asyncio.create_task(
            h.execute_update(TradingLifecycle.start, ChangeRequest("alice", "open"))
        )
        await asyncio.wait_for(hot.entered.wait(), 10)
        await h.signal(TradingLifecycle.halted_by_emergency_stop, "emergency stop: incident")
        hot.release.set()
        await update
        await h.terminate()
        await _save(h, "trading_lifecycle_halt_wins")


async def deadman(env: Any) -> None:
    from tests.workflows.test_deadman import World as DeadWorld
    from tests.workflows.test_deadman import _workers

    w = DeadWorld(open_orders=3, hotpath_up=False)
    ws = _workers(env, w)
    for x in ws:
        await x.__aenter__()
    try:
        h = await start_deadman(
            env.client, DeadmanInput(MARKET, "host-9-9", 1700000000.5, "heartbeat missed", 3)
        )
        await h.result()
        await _save(h, "deadman_switch")
    finally:
        for x in ws:
            await x.__aexit__(None, None, None)


async def scheduled_start(env: Any) -> None:
    from tests.workflows.test_scheduling import HeldDeploy

    client: Client = env.client
    async with Worker(client, task_queue=CONTROL_QUEUE, workflows=[ScheduledStart, HeldDeploy]):
        wid = f"deploy-model/REC{uuid.uuid4().hex[:6]}"
        running = await client.start_workflow(
            "DeployModel", {"market": "X"}, id=wid, task_queue=CONTROL_QUEUE
        )
        for name in ("scheduled_start_skipped", "scheduled_start"):
            h = await client.start_workflow(
                ScheduledStart.run,
                ScheduledStartInput("DeployModel", wid, {"market": "X"}, 60),
                id=f"scheduled/{wid}-{name}",
                task_queue=CONTROL_QUEUE,
            )
            await h.result()
            await _save(h, name)
            await running.signal("finish")
            await running.result()
            running = client.get_workflow_handle(wid)
        await client.get_workflow_handle(wid).signal("finish")


async def deploy_fail_closed(env: Any) -> None:
    from tests.workflows.test_deploy_model import GOOD, Fakes
    from workflows.deploy_model import DeployModel
    from workflows.types import DeployModelInput

    f = Fakes(GOOD, shadow_agreement=None)
    async with (
        Worker(
            env.client,
            task_queue=CONTROL_QUEUE,
            workflows=[DeployModel],
            activities=[f.ml_candidate, f.ml_validate, f.record, f.audit, f.notify],
        ),
        Worker(env.client, task_queue=host_queue(MARKET), activities=[f.command, f.status]),
    ):
        h = await env.client.start_workflow(
            DeployModel.run,
            DeployModelInput(MARKET, shadow_s=1, monitor_s=1),
            id=f"deploy-model/{uuid.uuid4()}",
            task_queue=CONTROL_QUEUE,
        )
        await h.result()
        await _save(h, "deploy_model_fail_closed")


RECORDERS = {
    "emergency_stop_flatten": estop_flatten,
    "emergency_stop_joined": estop_joined,
    "emergency_stop_failures": estop_failures,
    "trading_lifecycle_continued": lifecycle_continued,
    "trading_lifecycle_halt_wins": lifecycle_halt_wins,
    "deadman_switch": deadman,
    "scheduled_start": scheduled_start,
    "deploy_model_fail_closed": deploy_fail_closed,
}
