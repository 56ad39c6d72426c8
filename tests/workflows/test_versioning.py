"""Worker Deployment Versioning on a real dev server: the control worker polls as its build,
short workflows are pinned to the build that started them, TradingLifecycle auto-upgrades."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.api.enums.v1 import VersioningBehavior as ApiBehavior
from temporalio.api.workflowservice.v1 import SetWorkerDeploymentCurrentVersionRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from flashmm.config import load_settings
from workers.run import control_worker
from workflows.lifecycle import TradingLifecycle
from workflows.scheduled import ScheduledStart, ScheduledStartInput
from workflows.types import CONTROL_QUEUE, LifecycleInput


async def _set_current(client: Client, deployment: str, build: str) -> None:
    last: Exception | None = None
    for _ in range(100):  # the version exists once the worker has polled
        try:
            await client.workflow_service.set_worker_deployment_current_version(
                SetWorkerDeploymentCurrentVersionRequest(
                    namespace=client.namespace,
                    deployment_name=deployment,
                    build_id=build,
                    identity="test",
                )
            )
            return
        except Exception as e:
            last = e
            await asyncio.sleep(0.1)
    raise AssertionError(f"version never registered: {last}")


async def _behavior(client: Client, wid: str) -> int:
    for _ in range(100):
        d = await client.get_workflow_handle(wid).describe()
        info = d.raw_description.workflow_execution_info.versioning_info
        if info.behavior:
            return int(info.behavior)
        await asyncio.sleep(0.1)
    return 0


async def test_short_workflows_are_pinned_and_the_lifecycle_auto_upgrades(
    dev_env: WorkflowEnvironment,
) -> None:
    env = dev_env
    settings = load_settings(control={"worker_versioning": True, "build_id": "b-test-1"})
    async with control_worker(env.client, settings):
        await _set_current(env.client, "flashmm-control", "b-test-1")
        life = await env.client.start_workflow(
            TradingLifecycle.run,
            LifecycleInput("SEI/USDC"),
            id=f"market/test-{uuid.uuid4()}",
            task_queue=CONTROL_QUEUE,
        )
        short = await env.client.start_workflow(
            ScheduledStart.run,
            ScheduledStartInput("Nothing", f"nothing/{uuid.uuid4()}", {}, 5),
            id=f"scheduled/test-{uuid.uuid4()}",
            task_queue=CONTROL_QUEUE,
        )
        await short.result()
        assert await _behavior(env.client, life.id) == ApiBehavior.VERSIONING_BEHAVIOR_AUTO_UPGRADE
        assert await _behavior(env.client, short.id) == ApiBehavior.VERSIONING_BEHAVIOR_PINNED
        # the versioned declaration keeps every handler of the lifecycle
        assert (await life.query(TradingLifecycle.status)).state == "STOPPED"
        await life.terminate()
