"""The thin market preset: a wide touch without us, informed flow as in the default; and the
counterfactual run behind spread_improvement_pct: same seed, same schedule, no us."""

from __future__ import annotations

import pytest

from flashmm.domain.instrument import SEI_USDC
from flashmm.sim.market import SimMarket
from flashmm.sim.params import PRESETS, MarketParams, market_preset
from flashmm.sim.touch import TouchSpread
from hotpath.backtest import BacktestConfig, counterfactual_touch, run_backtest
from hotpath.quoting.params import QuoteParams
from hotpath.quoting.touch_policy import TouchPolicyConfig


@pytest.mark.parametrize("seed", [1, 2])
def test_thin_market_without_us_has_a_15_to_30_bps_touch(seed: int) -> None:
    cfg = BacktestConfig(minutes=3, market=market_preset("thin", seed=seed))
    touch = counterfactual_touch(cfg)
    assert touch.samples == touch.two_sided  # never one-sided at the grid
    assert abs(touch.samples - 3 * 60 * 5) <= 1  # 5 Hz, both ends (as float steps fall)
    assert 15.0 <= touch.market_bps <= 30.0
    default = counterfactual_touch(BacktestConfig(minutes=3, market=MarketParams(seed=seed)))
    assert default.market_bps < 8.0  # the default market is a different one


def test_thin_informed_flow_is_no_rarer_or_weaker_than_the_default() -> None:
    thin, default = market_preset("thin"), MarketParams()
    assert thin.informed_rate >= default.informed_rate
    assert thin.informed_edge <= default.informed_edge  # trades on smaller mispricings
    assert thin.market_size_mean >= default.market_size_mean  # informed orders' size
    assert thin.jump_rate >= default.jump_rate and thin.jump_sigma >= default.jump_sigma
    assert thin.fair_vol >= default.fair_vol


def test_presets_are_parameters_only() -> None:
    assert market_preset("default") == MarketParams()
    assert market_preset("thin", seed=9).seed == 9
    assert market_preset("thin", limit_A=2.0).limit_A == 2.0  # changes apply on top
    assert set(PRESETS["thin"]) <= set(MarketParams().as_dict())
    with pytest.raises(ValueError, match=r"unknown market preset .nope. \(known: default, thin\)"):
        market_preset("nope")


def _market_alone(params: MarketParams, minutes: float, quote_hz: float) -> TouchSpread:
    """The backtest's stop schedule (1 s samples, quotes every 1/quote_hz s, samples first)
    on the bare background market: no engine, no order manager, nothing of ours at all."""
    market = SimMarket(params)
    touch = TouchSpread()
    start = market.time
    end = start + minutes * 60.0
    period = 1.0 / quote_hz
    next_quote = next_sample = start
    while not (next_quote > end and next_sample > end):
        if next_sample <= next_quote:
            market.run_until(next_sample)
            next_sample += 1.0
        else:
            market.run_until(next_quote)
            book = market.exchange.book
            touch.add(book.best_bid, book.best_ask)
            next_quote += period
    return touch


def test_counterfactual_is_the_same_seed_without_us() -> None:
    params = market_preset("thin", seed=5)
    cfg = BacktestConfig(minutes=1, market=params, instrument=SEI_USDC)
    assert counterfactual_touch(cfg) == _market_alone(params, 1, cfg.quote_hz)


def test_counterfactual_does_not_depend_on_how_we_trade() -> None:
    params = market_preset("thin", seed=6)
    plain = run_backtest(BacktestConfig(minutes=1, market=params)).summary
    other = run_backtest(
        BacktestConfig(
            minutes=1,
            market=params,
            quoting=QuoteParams(gamma=0.5, levels=1),
            policy=TouchPolicyConfig(),
        )
    ).summary
    assert plain["fills"] != other["fills"]  # we traded differently ...
    without = plain["market_spread_bps_without_us"]
    assert other["market_spread_bps_without_us"] == without  # ... the market without us is one
    reseeded = run_backtest(BacktestConfig(minutes=1, market=params.with_(seed=7))).summary
    assert reseeded["market_spread_bps_without_us"] != without


def test_summary_spread_figures() -> None:
    cfg = BacktestConfig(
        minutes=2, market=market_preset("thin", seed=3), policy=TouchPolicyConfig()
    )
    s = run_backtest(cfg).summary
    w, wo = s["market_spread_bps_with_us"], s["market_spread_bps_without_us"]
    assert s["spread_improvement_pct"] == pytest.approx((1 - w / wo) * 100)
    assert 0 < w < wo  # we narrow a thin market
    assert 0 < s["our_quoted_spread_bps"] < wo
    assert 0 < s["our_two_sided_share"] <= 1
    assert abs(s["spread_samples"] - 2 * 60 * 5) <= 1  # both ends, as float steps fall
    shares = sum(s[f"policy_{c}_share"] for c in ("improve", "join", "behind", "model"))
    assert shares == pytest.approx(1.0)
    off = run_backtest(BacktestConfig(minutes=0.5, counterfactual=False)).summary
    assert off["market_spread_bps_without_us"] is None and off["spread_improvement_pct"] is None


def test_backtest_command_selects_the_preset_and_the_policy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from cli.main import main

    argv = ["backtest", "--minutes", "1", "--seed", "2", "--no-report", "--json"]
    assert main([*argv, "--preset", "thin", "--policy", "touch"]) == 0
    thin = json.loads(capsys.readouterr().out)
    assert thin["preset"] == "thin" and thin["policy_improve_share"] > 0
    assert 15.0 <= thin["market_spread_bps_without_us"] <= 30.0
    assert main(argv) == 0
    default = json.loads(capsys.readouterr().out)
    assert default["preset"] == "default" and "policy_improve_share" not in default
    assert default["market_spread_bps_without_us"] < 8.0


def test_policy_on_the_thin_preset_is_bit_identical_on_both_cores() -> None:
    from dataclasses import replace

    cfg = BacktestConfig(
        minutes=0.75, market=market_preset("thin", seed=8), policy=TouchPolicyConfig()
    )
    native = run_backtest(cfg)
    python = run_backtest(replace(cfg, sim_core="python"))
    wall = {"wall_s", "events_per_s", "cycle_p50_us", "cycle_p99_us"}
    assert {k: v for k, v in native.summary.items() if k not in wall} == {
        k: v for k, v in python.summary.items() if k not in wall
    }
    assert native.fills == python.fills and len(native.fills) > 100
