"""Two emergency stops on the same market with a resume between, through every path a stop
can take: the workflow alone, ``flashmm estop``, the API with a hot-path endpoint (both paths
at once) and the API without one (as on Kubernetes, where only the workflow reaches the hot
path). After each stop the hot path is halted and no order rests on the venue — the second
stop is never mistaken for the first (same workflow id, same X-Request-ID)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from api.auth.roles import Role
from tests.api.conftest import JWT_SECRET, Harness, make_harness, settings_for
from tests.integration.test_estop_e2e import MARKET, Platform, _ge, _spawn, _until, platform
from workers.run import control_worker, host_workers
from workflows.starters import start_emergency_stop
from workflows.types import EmergencyStopInput, EmergencyStopResult


async def _command(p: Platform, name: str, **args: object) -> dict[str, object]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{p.control_url}/v1/commands",
            headers={"Authorization": f"Bearer {p.token}"},
            json={"command_id": uuid.uuid4().hex, "command": name, "args": args},
        ) as r,
    ):
        assert r.status == 200, await r.text()
        body: dict[str, object] = await r.json()
        return body


async def _quoting(p: Platform) -> None:
    await _until(lambda: _ge(p.open_orders(), 2), 30)


async def _assert_stopped(p: Platform, how: str) -> None:
    async def flat() -> bool:
        return await p.open_orders() == 0

    await _until(flat, 20)
    await asyncio.sleep(0.9)  # two blocks later: still nothing (halted, not requoting)
    status = await p.status()
    assert status["desired"] == "halted" and status["risk_state"] == "halted", (how, status)
    assert await p.open_orders() == 0, how


async def _result(p: Platform, workflow_id: str) -> EmergencyStopResult:
    h = p.temporal.client.get_workflow_handle(workflow_id, result_type=EmergencyStopResult)
    return await asyncio.wait_for(h.result(), 60)


async def test_a_second_stop_after_a_resume_halts_again_on_every_path(
    tmp_path: Path, pg_dsn: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with platform(tmp_path, pg_dsn) as p:
        monkeypatch.setenv("FLASHMM_CONTROL_TOKEN", p.token)  # the host worker and the API
        monkeypatch.setenv("FLASHMM_API_JWT_SECRET", JWT_SECRET)
        workers = [
            control_worker(p.temporal.client, p.settings),
            *host_workers(p.temporal.client, p.settings),
        ]
        tasks = [asyncio.create_task(w.run()) for w in workers]
        address = p.temporal.client.service_client.config.target_host
        with_endpoint = await make_harness(
            settings_for(
                pg_dsn,
                redis_url,
                tmp_path / "a",
                control={"temporal_address": address, "hotpaths": {MARKET: p.control_url}},
            )
        )
        without_endpoint = await make_harness(
            settings_for(pg_dsn, redis_url, tmp_path / "b", control={"temporal_address": address}),
            users=False,
        )
        without_endpoint.tokens = with_endpoint.tokens  # same users, same database

        async def by_workflow(n: int) -> None:
            h = await start_emergency_stop(
                p.temporal.client, EmergencyStopInput([MARKET], "drill", "tester")
            )
            res = await asyncio.wait_for(h.result(), 60)
            assert res.markets[0].hotpath_halted and res.markets[0].verified_open == 0

        async def by_cli(n: int) -> None:
            cli = await _spawn(["estop", "--market", MARKET, "--reason", "drill"], p.env)
            out, _ = await asyncio.wait_for(cli.communicate(), 90)
            assert cli.returncode == 0
            res = json.loads(out.decode().strip().splitlines()[-1])
            assert res["markets"][0]["verified_open"] == 0

        def by_api(h: Harness) -> Callable[[int], Awaitable[None]]:
            async def stop(n: int) -> None:
                r = await h.http.post(
                    "/v1/emergency-stop",
                    json={"markets": [MARKET], "reason": "drill"},
                    headers={**h.auth(Role.TRADER), "X-Request-ID": "same-header-every-time"},
                )
                assert r.status_code == 202, r.text
                body = r.json()
                assert body["request_id"] == "same-header-every-time"
                assert body["workflow"]["started"], body
                await _result(p, body["workflow"]["workflow_id"])

            return stop

        paths: list[tuple[str, Callable[[int], Awaitable[None]]]] = [
            ("workflow", by_workflow),
            ("cli", by_cli),
            ("api with a hot-path endpoint", by_api(with_endpoint)),
            ("api without one", by_api(without_endpoint)),
        ]
        try:
            for how, stop in paths:
                for n in range(2):
                    await _quoting(p)
                    await stop(n)
                    await _assert_stopped(p, f"{how}, stop {n + 1}")
                    await _command(p, "resume")
        finally:
            for h in (with_endpoint, without_endpoint):
                await h.http.aclose()
                await h.ctx.close()
            for w in workers:
                await w.shutdown()
            await asyncio.gather(*tasks, return_exceptions=True)
