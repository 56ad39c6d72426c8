"""Schemathesis over the whole OpenAPI schema against ``flashmm api`` running as its own
process (uvicorn, a fresh database) with its dependencies up: the Temporal dev server, a
worker hosting TradingLifecycle and the hot-path activities, and a hot path (quote loop on
the simulated venue) behind its control API. No 5xx, and every response — status code,
content type, headers, body — conforms to the schema, for every operation.

One check is left out: ``positive_data_acceptance`` (a schema-valid request must get a
2xx). The schema cannot say "markets or all, not both" or "a cursor we handed out", and
those requests rightly get a documented 422.

In ``make test`` the run is deterministic: Hypothesis is derandomized (a fixed seed per
operation), uses no example database and tries ``max_examples=12`` per operation, so CI
fails or passes the same way every time. ``make fuzz`` sets ``FLASHMM_FUZZ=1``: randomized,
``FLASHMM_FUZZ_EXAMPLES`` examples per operation (default 200), failures remembered in
Hypothesis' example database. Whatever fuzzing finds is kept as an explicit regression
example in ``tests/api/test_hostile_input.py``."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from schemathesis.specs.openapi import checks

from flashmm.config.api import RateLimits
from tests.api.conftest import JWT_SECRET, closed_port

ADMIN_PASSWORD = "schemathesis admin password"
FUZZ = os.environ.get("FLASHMM_FUZZ", "") not in ("", "0")
SEED = 20261205


def hypothesis_settings() -> settings:
    """Deterministic for ``make test``; randomized and longer for ``make fuzz``."""
    common: dict[str, Any] = {"deadline": None, "suppress_health_check": list(HealthCheck)}
    if FUZZ:
        examples = int(os.environ.get("FLASHMM_FUZZ_EXAMPLES", "200"))
        return settings(max_examples=examples, derandomize=False, **common)
    return settings(max_examples=12, derandomize=True, database=None, **common)


async def _admin(base: str, sql: str) -> None:
    conn = await asyncpg.connect(f"{base}/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class Platform:
    """Temporal dev server, a worker and a hot path, on an event loop in a thread."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.ready = concurrent.futures.Future[tuple[str, str]]()
        self.stop = asyncio.Event()

    def __enter__(self) -> tuple[str, str]:
        self.thread.start()
        self.done = asyncio.run_coroutine_threadsafe(self._run(), self.loop)
        return self.ready.result(timeout=60)

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.done.result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _run(self) -> None:
        from temporalio.testing import WorkflowEnvironment
        from temporalio.worker import Worker

        from activities.hotpath import HotpathActivities
        from tests.integration.test_control import TOKEN, hot_path
        from workflows.lifecycle import TradingLifecycle
        from workflows.types import CONTROL_QUEUE, host_queue

        try:
            env = await WorkflowEnvironment.start_local(
                dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
                ui=False,
                dev_server_extra_args=["--log-level", "error"],
            )
            async with hot_path(self.state_dir / "hp.json") as (_, _, url):
                acts = HotpathActivities({"SEI/USDC": url, "ATOM/USDC": url})
                os.environ["FLASHMM_CONTROL_TOKEN"] = TOKEN
                workers = [
                    Worker(env.client, task_queue=CONTROL_QUEUE, workflows=[TradingLifecycle]),
                    *(
                        Worker(env.client, task_queue=host_queue(m), activities=[acts.command])
                        for m in ("SEI/USDC", "ATOM/USDC")
                    ),
                ]
                tasks = [asyncio.create_task(w.run()) for w in workers]
                self.ready.set_result((env.client.service_client.config.target_host, url))
                await self.stop.wait()
                for w in workers:
                    await w.shutdown()
                for t in tasks:
                    with contextlib.suppress(Exception):
                        await t
            await env.shutdown()
        except BaseException as e:
            if not self.ready.done():
                self.ready.set_exception(e)
            raise


@pytest.fixture(scope="module")
def server(services: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with Platform(tmp_path_factory.mktemp("platform")) as (temporal, hotpath):
        yield from _server(services, tmp_path_factory, temporal, hotpath)


def _server(
    services: dict[str, str], tmp_path_factory: pytest.TempPathFactory, temporal: str, hotpath: str
) -> Iterator[str]:
    base = services["pg"].rsplit("/", 1)[0]
    db = f"t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(base, f"CREATE DATABASE {db}"))
    env = {
        **os.environ,
        "FLASHMM_API_JWT_SECRET": JWT_SECRET,
        "FLASHMM_STORES__POSTGRES_DSN": f"{base}/{db}",
        "FLASHMM_STORES__REDIS_URL": services["redis"].rsplit("/", 1)[0] + "/15",
        "FLASHMM_CONTROL__TEMPORAL_ADDRESS": temporal,
        "FLASHMM_CONTROL__HOTPATHS": json.dumps({"SEI/USDC": hotpath, "ATOM/USDC": hotpath}),
        "FLASHMM_CONTROL_TOKEN": "t" * 32,
        "FLASHMM_API__TEMPORAL_TIMEOUT_S": "10",
        "FLASHMM_API__SPOOL_DIR": str(tmp_path_factory.mktemp("api")),
        "FLASHMM_API__RATE_LIMITS": json.dumps(  # every bucket, failed credentials included
            {k: {"rate": 100000, "burst": 100000} for k in RateLimits.model_fields}
        ),
        "FLASHMM_LOG_LEVEL": "ERROR",
        "FLASHMM_API_PASSWORD": ADMIN_PASSWORD,
    }
    cli = [sys.executable, "-m", "cli"]
    subprocess.run([*cli, "api-user", "add", "admin", "--role", "admin"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    port = closed_port()
    proc = subprocess.Popen(
        [*cli, "api", "--port", str(port)], env=env, stdout=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("flashmm api did not come up")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        asyncio.run(_admin(base, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))


@pytest.fixture(scope="module")
def admin_headers(server: str) -> dict[str, str]:
    r = httpx.post(
        f"{server}/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_every_operation_conforms(server: str, admin_headers: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        op = result.ok()
        operations += 1

        @given(case=op.as_strategy())
        @hypothesis_settings()
        def run(case: Any) -> None:
            case.call_and_validate(
                headers=admin_headers, excluded_checks=[checks.positive_data_acceptance]
            )

        if not FUZZ:
            run = seed(SEED)(run)  # the same examples on every run, whatever the test order
        try:
            run()
        except BaseException as e:
            failures[op.label] = str(e)[:1500]
    assert operations >= 35
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
