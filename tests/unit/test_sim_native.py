"""The compiled event core gives the same market and the same backtest as the Python core."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from flashmm.book.l2 import L2Book
from flashmm.domain.instrument import SEI_USDC
from flashmm.sim.market import SimMarket
from flashmm.sim.native import R_ROOM, NativeVenueCore
from flashmm.sim.params import MarketParams, VenueParams
from hotpath.backtest import Backtest, BacktestConfig, BacktestResult

WALL_CLOCK_KEYS = {"wall_s", "events_per_s", "cycle_p50_us", "cycle_p99_us"}


def _stable(s: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in s.items() if k not in WALL_CLOCK_KEYS}


def _both(cfg: BacktestConfig) -> tuple[BacktestResult, BacktestResult]:
    native = Backtest(cfg)
    assert native.native is not None
    python = Backtest(replace(cfg, sim_core="python"))
    assert python.core is not None
    return native.run(), python.run()


@pytest.mark.parametrize("seed", [7, 11])
def test_backtest_is_bit_identical_to_the_python_core(seed: int) -> None:
    rn, rp = _both(BacktestConfig(minutes=1.5, market=MarketParams(seed=seed)))
    assert _stable(rn.summary) == _stable(rp.summary)
    assert rn.fills == rp.fills
    assert rn.series == rp.series
    assert rn.summary["fills"] > 0 and rn.summary["reactive_cycles"] > 0


def test_backtest_identical_with_slow_reports_and_fast_quotes() -> None:
    cfg = BacktestConfig(
        minutes=0.5,
        quote_hz=20.0,
        market=MarketParams(seed=3, informed_rate=8.0),
        venue=VenueParams(order_latency_s=0.05, report_latency_s=0.03),
    )
    rn, rp = _both(cfg)
    assert _stable(rn.summary) == _stable(rp.summary)
    assert rn.fills == rp.fills


def _run_native(core: NativeVenueCore, t: float) -> None:
    while core.advance(t) == R_ROOM:
        core.take_trades()
    core.take_trades()
    core.run_until_later(t)
    while core.advance(-math.inf) == R_ROOM:  # applies the run_until
        core.take_trades()
    core.take_trades()
    core.sync_levels()


@pytest.mark.parametrize(
    ("params", "capacity"),
    [
        (MarketParams(seed=5), 0),
        (MarketParams(seed=9, warmup_s=0.0), 0),
        # a deep book: the order pool outgrows its first allocation
        (MarketParams(seed=2, cancel_rate=0.01, warmup_s=60.0), 0),
        # prices wander up: the level arrays grow
        (MarketParams(seed=2, start_price=1_700, jump_rate=2.0, jump_sigma=30.0), 2048),
    ],
)
def test_background_market_matches_sim_market(params: MarketParams, capacity: int) -> None:
    py = SimMarket(params)
    core = NativeVenueCore(SEI_USDC, params, VenueParams(), price_capacity=capacity)
    assert core.book.snapshot() == py.exchange.book.snapshot()
    for t in (params.warmup_s + 20.0, params.warmup_s + 60.0):
        py.run_until(t)
        py.take_trades()
        _run_native(core, t)
        assert core.events == py.events
        assert core.fair == py.fair
        assert core.time == py.time
        assert core.book.snapshot() == py.exchange.book.snapshot()
        assert (core.book.best_bid, core.book.best_ask) == (
            py.exchange.book.best_bid,
            py.exchange.book.best_ask,
        )
    if capacity:
        assert core.price_capacity > capacity  # grew past its first allocation


def test_native_book_depth_is_l2book_depth() -> None:
    params = MarketParams(seed=13)
    core = NativeVenueCore(SEI_USDC, params, VenueParams())
    for t in (40.0, 45.0, 50.0):
        _run_native(core, t)
        core.book.depth(1, 5)
        core.advance(t + 1.0)  # the cached top is dropped with every advance
        plain = L2Book()
        for side, levels in zip((1, -1), core.book.snapshot(), strict=True):
            for price, lots in levels:
                plain.set_level(side, price, lots)
        for side in (1, -1):
            for n in (1, 3, 10, 12, 100):
                assert core.book.depth(side, n) == plain.depth(side, n)


def test_signal_using_features_runs_on_the_python_core() -> None:
    class FeatureSignal:
        uses_features = True

        def predict(self, features: list[float], ts_ns: int, mid: float) -> tuple[float, float]:
            return 0.0, 0.0

        def observe(self, ts_ns: int, mid: float) -> None:
            return None

    bt = Backtest(BacktestConfig(minutes=0.1), signal=FeatureSignal())
    assert bt.native is None and bt.core is not None


def test_sim_core_is_validated() -> None:
    with pytest.raises(ValueError, match="sim_core"):
        BacktestConfig(sim_core="fortran")
