"""``flashmm worker`` serves Prometheus /metrics (what the deployment scrapes and probes),
and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
from temporalio.testing import WorkflowEnvironment

from flashmm.temporal.search_attributes import KEYS
from tests.workflows.conftest import _bin


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_control_worker_serves_metrics(pg_dsn: str, redis_url: str) -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=_bin("temporal"),
        search_attributes=KEYS,  # a control worker refuses to start without them
        ui=False,
        dev_server_extra_args=["--log-level", "error"],
    )
    port = _port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "worker", "control", "--metrics-port", str(port)],
        env={
            **os.environ,
            "FLASHMM_CONTROL__TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "FLASHMM_STORES__POSTGRES_DSN": pg_dsn,
            "FLASHMM_STORES__REDIS_URL": redis_url,
        },
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert '"event": "worker"' in line, line
        deadline = time.monotonic() + 20
        text = ""
        while time.monotonic() < deadline:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert 'flashmm_uptime_seconds{process="worker-control"}' in text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await env.shutdown()
