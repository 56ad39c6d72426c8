"""The Temporal SDK's own metrics, scraped from real workers on a dev server: ``flashmm worker
all --sdk-metrics-port`` serves them (per task queue, after running a TradingLifecycle), and
every family the alert rules and dashboards read (``SDK_METRICS``) is exported under exactly
that name and type, with the finer schedule-to-start buckets."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
import urllib.request
from collections.abc import Callable
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from flashmm.temporal.sdk_metrics import (
    SCHEDULE_TO_START_BUCKETS,
    SDK_METRICS,
    SDK_SAMPLE_NAMES,
    prometheus_runtime,
)
from tests.workflows.conftest import SEARCH_ATTRIBUTES, _bin

HOST_QUEUE = "flashmm-host-sei-usdc"
_TYPE = re.compile(r"^# TYPE (\w+) (\w+)$", re.M)
_SAMPLE = re.compile(r"^(\w+)\{([^}]*)\} ", re.M)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


def _samples(text: str, name: str) -> list[str]:
    """The label sets of every sample called ``name``."""
    return [labels for n, labels in _SAMPLE.findall(text) if n == name]


async def _until(port: int, done: Callable[[str], bool], timeout: float = 20.0) -> str:
    """Scrape until ``done(text)`` holds (the SDK exports on its own schedule)."""
    end = asyncio.get_running_loop().time() + timeout
    text = ""
    while asyncio.get_running_loop().time() < end:
        try:
            text = await asyncio.to_thread(_scrape, port)
        except OSError:
            text = ""
        if text and done(text):
            return text
        await asyncio.sleep(0.25)
    return text


@activity.defn
async def ok(x: str) -> str:
    return x


@activity.defn
async def boom(x: str) -> str:
    raise ApplicationError("no", non_retryable=True)


@workflow.defn(sandboxed=False)
class Steps:
    """Two activities on the host queue (sticky cache hits), one of them failing."""

    @workflow.run
    async def run(self) -> str:
        await workflow.execute_activity(
            ok, "a", task_queue=HOST_QUEUE, start_to_close_timeout=timedelta(seconds=10)
        )
        try:
            await workflow.execute_activity(
                boom,
                "b",
                task_queue=HOST_QUEUE,
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        except ActivityError:
            return "done"
        return "unexpected"


@workflow.defn(sandboxed=False)
class Broken:
    """Its workflow task fails on every attempt (not a workflow failure: a stuck workflow)."""

    @workflow.run
    async def run(self) -> None:
        raise RuntimeError("a bug in workflow code")


async def test_every_family_the_rules_read_is_exported_with_its_type() -> None:
    port = _free_port()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=_bin("temporal"),
        search_attributes=SEARCH_ATTRIBUTES,
        ui=False,
        runtime=prometheus_runtime(f"127.0.0.1:{port}"),
        dev_server_extra_args=["--log-level", "error"],
    )
    try:
        client = env.client
        async with (
            Worker(
                client,
                task_queue="flashmm-control",
                workflows=[Steps, Broken],
                workflow_runner=UnsandboxedWorkflowRunner(),
            ),
            Worker(client, task_queue=HOST_QUEUE, activities=[ok, boom]),
        ):
            assert (
                await client.execute_workflow(Steps.run, id="steps", task_queue="flashmm-control")
                == "done"
            )
            broken = await client.start_workflow(
                Broken.run, id="broken", task_queue="flashmm-control"
            )
            text = await _until(port, lambda t: all(f"# TYPE {n} " in t for n in SDK_METRICS))
            await broken.terminate("test over")
    finally:
        await env.shutdown()

    types = dict(_TYPE.findall(text))
    for name, kind in SDK_METRICS.items():
        assert types.get(name) == kind, f"{name}: exported as {types.get(name)}, not {kind}"
    names = {n for n, _ in _SAMPLE.findall(text)}
    assert names >= SDK_SAMPLE_NAMES, sorted(SDK_SAMPLE_NAMES - names)

    failed = _samples(text, "temporal_workflow_task_execution_failed")
    assert any(
        'workflow_type="Broken"' in s and 'task_queue="flashmm-control"' in s for s in failed
    )
    act_failed = _samples(text, "temporal_activity_execution_failed")
    assert any(
        'activity_type="boom"' in s and f'task_queue="{HOST_QUEUE}"' in s for s in act_failed
    )
    # the finer buckets around the 1 s budget, in seconds
    bounds = {
        m.group(1)
        for s in _samples(text, "temporal_activity_schedule_to_start_latency_bucket")
        if (m := re.search(r'le="([^"]+)"', s))
    }
    assert {"0.25", "1", "2.5"} <= bounds and len(bounds) == len(SCHEDULE_TO_START_BUCKETS) + 1


async def test_the_worker_command_serves_sdk_metrics_per_task_queue() -> None:
    port = _free_port()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=_bin("temporal"),
        search_attributes=SEARCH_ATTRIBUTES,
        ui=False,
        dev_server_extra_args=["--log-level", "error"],
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.main",
        "worker",
        "all",
        "--sdk-metrics-port",
        str(port),
        env={
            **os.environ,
            "FLASHMM_CONTROL__TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "FLASHMM_CONTROL__METRICS_PORT": "0",
            "FLASHMM_CONTROL__HOTPATHS": '{"SEI/USDC": "http://127.0.0.1:9"}',
            "FLASHMM_STORES__ENABLED": "false",
            "FLASHMM_DEADMAN__ENABLED": "false",
        },
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        # a TradingLifecycle run by that worker: its first workflow task upserts Market
        from workflows.starters import ensure_lifecycle

        handle = await ensure_lifecycle(env.client, "SEI/USDC")
        status = await asyncio.wait_for(handle.query("status"), 60)
        assert status

        def served(t: str) -> bool:
            return any(
                'task_queue="flashmm-control"' in s
                for s in _samples(t, "temporal_workflow_task_schedule_to_start_latency_bucket")
            ) and any(
                f'task_queue="{HOST_QUEUE}"' in s and 'poller_type="activity_task"' in s
                for s in _samples(t, "temporal_num_pollers")
            )

        text = await _until(port, served, timeout=60)
        assert served(text), text[-3000:] or "nothing served on the SDK metrics port"
        assert proc.returncode is None, "the worker exited"
        await handle.terminate("test over")
    finally:
        if proc.returncode is None:
            proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 150)
        await env.shutdown()
    assert b"Traceback" not in err, err.decode()[-3000:]
