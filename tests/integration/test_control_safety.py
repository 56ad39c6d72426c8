"""The control API under repeated and hostile commands: an id is bound to its command and
arguments, a halt is never skipped, and run-time changes stay inside the configured
ceilings (including across a restart with lowered ceilings)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from flashmm.config.bounds import RuntimeBounds
from hotpath.quoting.params import QuoteParams
from hotpath.risk import RiskLimits, TradingState
from tests.integration.test_control import TOKEN, command, hot_path, wait_for


async def _raw(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{url}/v1/commands",
            data=body,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        ) as r,
    ):
        return r.status, await r.json()


async def test_a_halt_after_a_resume_halts_again_under_the_same_id(tmp_path: Path) -> None:
    async with hot_path(tmp_path / "h.json") as (control, venue, url):
        for round_ in range(2):
            await wait_for(lambda: len(venue.core.open_orders()) >= 2)
            status, body = await command(url, "estop/SEI/USDC/halt/SEI/USDC", "halt", reason="x")
            assert status == 200 and body["detail"] == "halted", (round_, body)
            assert control.state.state == "halted"
            assert control.mm.trading_state is TradingState.HALTED
            await wait_for(lambda: not venue.core.open_orders(), 1.0)
            status, _ = await command(url, f"resume-{round_}", "resume")
            assert status == 200 and control.state.state == "trading"


async def test_the_same_id_with_another_command_or_payload_is_refused(tmp_path: Path) -> None:
    async with hot_path(tmp_path / "c.json") as (control, _venue, url):
        status, first = await command(url, "replay-1", "flatten", reason="reduce")
        assert status == 200 and control.mm.trading_state is TradingState.REDUCING
        status, body = await command(url, "replay-1", "halt", reason="now")
        assert status == 422 and body["conflict"] is True, body
        assert "already used" in body["error"] and "detail" not in body
        assert control.state.state == "trading"  # refused: nothing applied under that id
        # other arguments under the same id: refused too
        status, body = await command(url, "replay-1", "flatten", reason="other")
        assert status == 422 and body["conflict"] is True
        # the very same command again: the recorded answer
        status, again = await command(url, "replay-1", "flatten", reason="reduce")
        assert status == 200 and again["replayed"] and again["at"] == first["at"]
        # a fresh id halts
        status, body = await command(url, "halt-2", "halt", reason="now")
        assert status == 200 and control.state.state == "halted"


async def test_the_binding_survives_a_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "r.json"
    async with hot_path(state_file) as (_control, _venue, url):
        status, _ = await command(url, "p-1", "set_params", quoting={"gamma": 0.2})
        assert status == 200
    async with hot_path(state_file) as (control, _venue, url):
        status, body = await command(url, "p-1", "set_params", quoting={"gamma": 0.3})
        assert status == 422 and body["conflict"]
        assert control.mm.params.gamma == 0.2


async def test_limits_cannot_be_raised_and_bad_numbers_change_nothing(tmp_path: Path) -> None:
    async with hot_path(tmp_path / "l.json") as (control, _venue, url):
        before = (control.mm.params, control.mm.limits)
        refused: list[dict[str, Any]] = [
            {"risk": {"max_position_notional": 1e12}},
            {"risk": {"max_order_notional": 501}},
            {"risk": {"max_open_notional": 1e12}},
            {"risk": {"daily_loss_limit": 1e15}},
            {"risk": {"stale_after_s": 1e9}},
            {"risk": {"vol_breaker_sigma": 1e15}},
            {"risk": {"vol_breaker_cooldown_s": 1}},  # shorter than configured: less safe
            {"risk": {"max_position_notional": True}},
            {"risk": {"max_actions_per_s": 2.5}},
            {"quoting": {"min_half_spread_ticks": 0}},
            {"quoting": {"order_notional": 1e9}},
            {"quoting": {"mode": 3}},
            {"quoting": {"gamma": 0.2}, "risk": {"max_drawdown": 151}},
        ]
        for i, args in enumerate(refused):
            status, body = await command(url, f"bad-{i}", "set_params", **args)
            assert status == 409, (args, body)
            name = next(iter(args.get("risk") or args["quoting"]))
            assert name in body["error"], (args, body)
            assert (control.mm.params, control.mm.limits) == before
        for i, raw in enumerate(
            (
                b'{"command_id":"n-1","command":"set_params","args":{"risk":{"max_drawdown":NaN}}}',
                b'{"command_id":"n-2","command":"set_params","args":{"risk":{"max_drawdown":1e309}}}',
                b'{"command_id":"n\\u0000","command":"halt","args":{}}',
                b'{"command_id":"n-4","command":"halt","args":{"reason":"\\ud800"}}',
                b'{"command_id":"n-5","command":"set_params","args":{"risk":{"max_drawdown":'
                + b"1" * 400
                + b"}}}",
                b"[" * 20_000 + b"]" * 20_000,
            )
        ):
            status, body = await _raw(url, raw)
            assert status == 400, (i, body)
        assert (control.mm.params, control.mm.limits) == before
        assert control.state.state == "trading"
        # inside the bounds: applied, with old and new values in the answer
        status, body = await command(
            url, "ok-1", "set_params", risk={"max_position_notional": 1500, "max_actions_per_s": 20}
        )
        assert status == 200, body
        assert body["detail"]["changes"]["risk.max_position_notional"] == {
            "old": 2000.0,
            "new": 1500.0,
        }
        assert control.mm.limits.max_actions_per_s == 20
        assert isinstance(control.mm.limits.max_actions_per_s, int)


async def test_a_lowered_ceiling_wins_over_a_saved_change(tmp_path: Path) -> None:
    state_file = tmp_path / "s.json"
    async with hot_path(state_file) as (_control, _venue, url):
        status, _ = await command(url, "p-1", "set_params", risk={"max_position_notional": 1800})
        assert status == 200
    saved = json.loads(state_file.read_text())
    assert saved["risk"] == {"max_position_notional": 1800}
    assert saved["ceilings"]["max_position_notional"] == 2000.0
    # restarted with the ceiling lowered to 1000 in the settings: the saved 1800 is dropped
    from flashmm.domain.instrument import SEI_USDC
    from flashmm.sim.inprocess import InProcessVenue
    from flashmm.sim.params import MarketParams
    from hotpath.control import ControlServer
    from hotpath.engine import MarketMaker
    from hotpath.loop import LoopConfig, QuoteLoop

    venue = InProcessVenue(SEI_USDC, MarketParams(seed=4, warmup_s=5))
    limits = RiskLimits(max_position_notional=1000.0)
    mm = MarketMaker(SEI_USDC, QuoteParams(), limits)
    ql = QuoteLoop(mm, venue, LoopConfig(quote_hz=20, shutdown_timeout_s=1.0))
    control = ControlServer(
        ql, state_file, TOKEN, bounds=RuntimeBounds.build(QuoteParams(), limits)
    )
    control.apply_persisted()
    try:
        assert mm.limits.max_position_notional == 1000.0
        assert control.state.risk == {}
        assert control.ceiling_changes == {"max_position_notional": {"old": 2000.0, "new": 1000.0}}
    finally:
        await asyncio.wait_for(venue.close(), 5)
