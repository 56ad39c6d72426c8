"""The hot path's local control API against a running quote loop on the simulated venue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from flashmm.domain.instrument import SEI_USDC
from flashmm.sim.inprocess import InProcessVenue
from flashmm.sim.params import MarketParams
from hotpath.control import ControlServer
from hotpath.control_state import ControlState
from hotpath.engine import MarketMaker
from hotpath.loop import LoopConfig, QuoteLoop
from hotpath.quoting.params import QuoteParams
from hotpath.risk import RiskLimits, TradingState

TOKEN = "t" * 32


@asynccontextmanager
async def hot_path(
    state_file: Path, initial: str = "trading"
) -> AsyncIterator[tuple[ControlServer, InProcessVenue, str]]:
    venue = InProcessVenue(SEI_USDC, MarketParams(seed=4, warmup_s=5))
    mm = MarketMaker(SEI_USDC, QuoteParams(), RiskLimits())
    ql = QuoteLoop(mm, venue, LoopConfig(quote_hz=20, shutdown_timeout_s=1.0))
    control = ControlServer(ql, state_file, TOKEN)
    if not state_file.exists():
        control.state = ControlState(state=initial)
    control.apply_persisted()
    await control.start()
    stop = asyncio.Event()
    task = asyncio.create_task(ql.run(stop))
    try:
        yield control, venue, f"http://127.0.0.1:{control.port}"
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await control.stop()
        await venue.close()


async def command(
    url: str, cid: str, name: str, token: str = TOKEN, **args: Any
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{url}/v1/commands",
            json={"command_id": cid, "command": name, "args": args},
            headers={"Authorization": f"Bearer {token}"},
        ) as r,
    ):
        return r.status, await r.json()


async def wait_for(pred: Any, timeout: float = 3.0) -> None:
    end = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_halt_cancels_everything_and_survives_a_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "SEI_USDC.control.json"
    async with hot_path(state_file) as (control, venue, url):
        await wait_for(lambda: len(venue.core.open_orders()) >= 2)
        status, body = await command(url, "c-1", "halt", reason="operator test")
        assert status == 200 and body["applied"] and not body["replayed"]
        assert body["state"]["desired"] == "halted"
        await wait_for(lambda: not venue.core.open_orders(), 1.0)
        await asyncio.sleep(0.3)
        assert not venue.core.open_orders()  # and nothing new while halted
        # the same halt again: applied again (a no-op on a halted market), never skipped
        status, again = await command(url, "c-1", "halt", reason="operator test")
        assert status == 200 and again["replayed"] and again["detail"] == "halted"
        status, refused = await command(url, "c-2", "start")
        assert status == 409 and "resume" in refused["error"]
    # a new process on the same state file comes back halted, before any quote
    async with hot_path(state_file) as (control, venue, url):
        assert control.mm.trading_state is TradingState.HALTED
        await asyncio.sleep(0.5)
        assert not venue.core.open_orders()
        status, body = await command(url, "c-3", "resume")
        assert status == 200 and body["state"]["desired"] == "trading"
        await wait_for(lambda: len(venue.core.open_orders()) >= 2)


async def test_stop_confirms_no_open_orders_then_start_requotes(tmp_path: Path) -> None:
    async with hot_path(tmp_path / "s.json") as (_control, venue, url):
        await wait_for(lambda: len(venue.core.open_orders()) >= 2)
        status, body = await command(url, "s-1", "stop", reason="maintenance")
        assert status == 200 and body["detail"] == "stopped; no open orders"
        assert not venue.core.open_orders()
        await asyncio.sleep(0.3)
        assert not venue.core.open_orders()
        status, body = await command(url, "s-2", "start")
        assert status == 200
        await wait_for(lambda: len(venue.core.open_orders()) >= 2)


async def test_stopped_initial_state_never_quotes(tmp_path: Path) -> None:
    async with hot_path(tmp_path / "s.json", initial="stopped") as (_control, venue, url):
        await asyncio.sleep(0.6)
        assert not venue.core.open_orders()
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"{url}/v1/status", headers={"Authorization": f"Bearer {TOKEN}"}) as r,
        ):
            assert (await r.json())["desired"] == "stopped"


async def test_set_params_is_validated_and_applied(tmp_path: Path) -> None:
    async with hot_path(tmp_path / "p.json") as (control, _venue, url):
        status, body = await command(
            url, "p-1", "set_params", quoting={"gamma": 0.3}, risk={"max_position_notional": 500}
        )
        assert status == 200
        assert control.mm.params.gamma == 0.3
        assert control.mm.limits.max_position_notional == 500.0
        bads: list[dict[str, Any]] = [
            {"quoting": {"gamma": -1}},
            {"quoting": {"nope": 1}},
            {"risk": {}},
            {"quoting": {"min_half_spread_ticks": 30, "max_half_spread_ticks": 20}},
        ]
        for bad in bads:
            status, body = await command(url, f"p-bad-{len(str(bad))}", "set_params", **bad)
            assert status == 409, body
        assert control.mm.params.gamma == 0.3  # unchanged by the refused commands


async def test_auth_and_bad_requests(tmp_path: Path) -> None:
    async with hot_path(tmp_path / "a.json") as (control, _venue, url):
        status, body = await command(url, "x-1", "halt", token="wrong" * 8)
        assert status == 401
        assert control.state.state == "trading"
        status, body = await command(url, "x-2", "explode")
        assert status == 409 and "unknown command" in body["error"]
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                f"{url}/v1/commands",
                data=b"not json",
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as r,
        ):
            assert r.status == 400
