"""One rotation and one deployment per market, whoever starts them; an operator's pause of a
schedule survives worker restarts; an in-flight activity finishes when the worker is told to
stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from temporalio import workflow
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from flashmm.config import load_settings
from workers.run import host_workers
from workers.schedules import ensure_schedules
from workflows.scheduled import ScheduledStart, ScheduledStartInput
from workflows.types import CONTROL_QUEUE, HotpathCommand, deploy_model_id, host_queue


@workflow.defn(name="DeployModel", sandboxed=False)  # a test stand-in: no sandbox needed
class HeldDeploy:
    """Stands in for DeployModel's run: holds until signalled, so a second start overlaps."""

    def __init__(self) -> None:
        self.go = False

    @workflow.run
    async def run(self, inp: dict[str, Any]) -> str:
        await workflow.wait_condition(lambda: self.go)
        return str(inp["market"])

    @workflow.signal
    def finish(self) -> None:
        self.go = True


async def test_a_scheduled_start_never_runs_beside_an_operators(
    dev_env: WorkflowEnvironment,
) -> None:
    env = dev_env
    wid = deploy_model_id("SEI/USDC")
    async with Worker(env.client, task_queue=CONTROL_QUEUE, workflows=[ScheduledStart, HeldDeploy]):
        # the operator's deployment (API and CLI start this id with FAIL on conflict)
        mine = await env.client.start_workflow(
            "DeployModel", {"market": "SEI/USDC"}, id=wid, task_queue=CONTROL_QUEUE
        )
        sched = await env.client.execute_workflow(
            ScheduledStart.run,
            ScheduledStartInput("DeployModel", wid, {"market": "SEI/USDC"}, 60),
            id="scheduled/deploy-model/SEI/USDC-2026-12-05T02:00:00Z",
            task_queue=CONTROL_QUEUE,
        )
        assert not sched.started and sched.skipped_because == "already running"
        await mine.signal("finish")
        assert await mine.result() == "SEI/USDC"
        # nothing running: the schedule's start goes through under the canonical id
        sched = await env.client.execute_workflow(
            ScheduledStart.run,
            ScheduledStartInput("DeployModel", wid, {"market": "SEI/USDC"}, 60),
            id="scheduled/deploy-model/SEI/USDC-2026-12-06T02:00:00Z",
            task_queue=CONTROL_QUEUE,
        )
        assert sched.started and sched.run_id
        # and now an operator's start is the one refused
        with pytest.raises(WorkflowAlreadyStartedError):
            await env.client.start_workflow(
                "DeployModel", {"market": "SEI/USDC"}, id=wid, task_queue=CONTROL_QUEUE
            )
        await env.client.get_workflow_handle(wid).signal("finish")


async def test_an_operators_pause_survives_restarts(dev_env: WorkflowEnvironment) -> None:
    s = load_settings()
    await ensure_schedules(dev_env.client, s)
    reset = dev_env.client.get_schedule_handle("daily-risk-reset")
    await reset.pause(note="market holiday (carol)")
    await ensure_schedules(dev_env.client, s)  # a control worker restarts
    state = (await reset.describe()).schedule.state
    assert state.paused and state.note == "market holiday (carol)"
    # a settings-owned pause still follows the settings
    configured = load_settings(control={"warm_key_ref": "keystore:warm-abc"})
    await ensure_schedules(dev_env.client, configured)
    rotation = await dev_env.client.get_schedule_handle("key-rotation-sei-usdc").describe()
    assert not rotation.schedule.state.paused


@pytest_asyncio.fixture
async def slow_hotpath() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A hot-path control endpoint on loopback that takes 2 s to answer."""
    entered = asyncio.Event()

    async def command(request: web.Request) -> web.Response:
        entered.set()
        await asyncio.sleep(2)
        return web.json_response({"state": "halted"})

    app = web.Application()
    app.router.add_post("/v1/commands", command)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", entered
    finally:
        await runner.cleanup()


async def test_stopping_a_worker_lets_the_in_flight_activity_finish(
    time_env: WorkflowEnvironment,
    slow_hotpath: tuple[str, asyncio.Event],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, entered = slow_hotpath
    monkeypatch.setenv("FLASHMM_CONTROL_TOKEN", "t" * 32)
    settings = load_settings(control={"hotpaths": {"SEI/USDC": url}})
    (worker,) = host_workers(time_env.client, settings)
    task = asyncio.create_task(worker.run())
    handle = asyncio.create_task(
        time_env.client.execute_workflow(
            "HaltOnce",
            HotpathCommand("SEI/USDC", "c-1", "halt", {}),
            id="halt-once",
            task_queue=CONTROL_QUEUE,
        )
    )
    async with Worker(time_env.client, task_queue=CONTROL_QUEUE, workflows=[HaltOnce]):
        await asyncio.wait_for(entered.wait(), 10)
        await worker.shutdown()  # SIGTERM: the 2 s answer still arrives and is delivered
        await task
        # the activity completed on the old worker; the workflow got its answer
        (worker2,) = host_workers(time_env.client, settings)
        async with worker2:
            assert await asyncio.wait_for(handle, 30) == {"state": "halted"}


@workflow.defn(name="HaltOnce", sandboxed=False)
class HaltOnce:
    @workflow.run
    async def run(self, cmd: HotpathCommand) -> dict[str, Any]:
        from datetime import timedelta

        from temporalio.common import RetryPolicy

        result: dict[str, Any] = await workflow.execute_activity(
            "hotpath_command",
            cmd,
            task_queue=host_queue(cmd.market),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=1),  # a cancelled attempt would fail it
            result_type=dict,
        )
        return result
