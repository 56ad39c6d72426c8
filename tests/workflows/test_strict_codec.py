"""A worker with the payload codec refuses input sent without it: the workflow does not act
(no activity is scheduled), its history says why, and the same stop sent with the key runs.
The demo's CLI used to send plain input that the worker accepted and stored in plain text."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from flashmm.temporal.client import connect
from flashmm.temporal.codec import new_key_spec
from workflows.estop import EmergencyStop
from workflows.starters import start_emergency_stop
from workflows.types import CONTROL_QUEUE, EmergencyStopInput


async def _events(h: WorkflowHandle[object, object], until: float) -> list[object]:
    end = asyncio.get_running_loop().time() + until
    while True:
        events = [e async for e in h.fetch_history_events()]
        kinds = {e.event_type for e in events}
        done = EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED in kinds or (
            EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED in kinds
        )
        if done or asyncio.get_running_loop().time() > end:
            return events
        await asyncio.sleep(0.2)


async def test_a_strict_worker_refuses_plain_input_and_says_why(
    dev_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASHMM_CODEC_KEYS", new_key_spec("s1"))
    address = dev_env.client.service_client.config.target_host
    worker_client = await connect(address, strict=True)
    plain = await Client.connect(address)  # a CLI without the key
    keyed = await connect(address)
    async with Worker(worker_client, task_queue=CONTROL_QUEUE, workflows=[EmergencyStop]):
        h = await start_emergency_stop(plain, EmergencyStopInput(["SEI/USDC"], "no key"))
        events = await _events(h, 20)
        kinds = [e.event_type for e in events]
        assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED in kinds
        assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in kinds  # nothing acted on
        failed = next(
            e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
        )
        err = await keyed.data_converter.decode_failure(
            failed.workflow_task_failed_event_attributes.failure
        )
        assert "unencrypted payload refused" in str(err) + str(err.__cause__ or "")
        await h.terminate("test over")

        ok = await start_emergency_stop(keyed, EmergencyStopInput(["ATOM/USDC"], "with key"))
        kinds = [e.event_type for e in await _events(ok, 20)]
        assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED in kinds
        assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in kinds
        await ok.terminate("test over")
