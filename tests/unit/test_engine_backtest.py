"""MarketMaker cycle on a hand-built book, and short seeded backtests through the same engine."""

from __future__ import annotations

import pytest

from flashmm.book.l2 import L2Book
from flashmm.domain.instrument import SEI_USDC
from flashmm.domain.orders import Fill, Liquidity, Side
from flashmm.sim.params import MarketParams
from flashmm.venue.base import PlaceOrder
from hotpath.backtest import Backtest, BacktestConfig, BacktestResult, run_backtest
from hotpath.engine import MarketMaker
from hotpath.quoting.params import Mode, QuoteModel, QuoteParams
from hotpath.risk import DenyReason, RiskLimits, TradingState

S = 1_000_000_000
NOW = 100 * S
WALL_CLOCK_KEYS = {"wall_s", "events_per_s", "cycle_p50_us", "cycle_p99_us"}


def make_book(bid: int = 4999, ask: int = 5001) -> L2Book:
    b = L2Book()
    for i in range(3):
        b.set_level(1, bid - i, 500 + 100 * i)
        b.set_level(-1, ask + i, 500 + 100 * i)
    return b


def move_book(b: L2Book, bid: int, ask: int) -> None:
    b.clear()
    b.set_level(1, bid, 500)
    b.set_level(-1, ask, 500)


# Every field that shapes a quote is pinned, so a change of defaults does not move the numbers.
PARAMS = QuoteParams(
    model=QuoteModel.GLFT,
    mode=Mode.ADAPTIVE,
    gamma=0.1,
    prior_sigma=1.0,
    prior_A=1.0,
    prior_k=0.5,
    levels=2,
    level_spacing_ticks=1,
    order_notional=100.0,
    size_decay=1.0,
    min_half_spread_ticks=0.5,
    max_half_spread_ticks=50.0,
    vol_ref=1.0,
    vol_widen=0.5,
    inventory_skew_mult=1.0,
    requote_min_interval_s=0.02,
    keep_size_tolerance=0.25,
)


def make_mm(**limits: float) -> MarketMaker:
    lim = RiskLimits(**limits)  # type: ignore[arg-type]
    return MarketMaker(SEI_USDC, PARAMS, lim, book=make_book())


# With prior σ = 1, A = 1, k = 0.5 and γ = 0.1 the GLFT half spread is 2.096437 ticks, so a
# 4999/5001 book gives bid 4997 / ask 5003 and a second level one tick further out; size is
# 100 USDC / (5000 × 0.0001) = 200 lots.
EXPECTED_PLACES = [
    (Side.BUY, 4997, 200),
    (Side.SELL, 5003, 200),
    (Side.BUY, 4996, 200),
    (Side.SELL, 5004, 200),
]


def placed(places: list[PlaceOrder]) -> list[tuple[Side, int, int]]:
    return [(p.side, p.price, p.lots) for p in places]


# --- engine --------------------------------------------------------------------------------
def test_cycle_gives_two_sided_batch() -> None:
    mm = make_mm()
    mm.on_market_data(NOW)
    batch = mm.cycle(NOW)
    assert batch.cancels == []
    assert placed(batch.places) == EXPECTED_PLACES
    assert all(p.post_only for p in batch.places)
    assert [p.client_id for p in batch.places] == ["fmm-1", "fmm-2", "fmm-3", "fmm-4"]
    assert set(mm.om.live) == {"fmm-1", "fmm-2", "fmm-3", "fmm-4"}
    st = mm.status()
    assert (st["our_bid"], st["our_ask"]) == (4997, 5003)
    assert mm.stats.quotes_sent == 4


def test_unchanged_book_does_not_churn() -> None:
    mm = make_mm()
    mm.on_market_data(NOW)
    mm.cycle(NOW)
    mm.on_market_data(NOW + S // 5)
    assert not mm.cycle(NOW + S // 5)  # same quotes: everything kept, empty batch


def test_halt_cancels_everything_and_later_cycles_place_nothing() -> None:
    mm = make_mm()
    mm.on_market_data(NOW)
    first = mm.cycle(NOW)
    batch = mm.halt("operator")
    assert batch.places == []
    assert sorted(c.client_id for c in batch.cancels) == sorted(p.client_id for p in first.places)
    assert mm.trading_state is TradingState.HALTED
    assert (mm.status()["our_bid"], mm.status()["our_ask"]) == (0, 0)
    for c in batch.cancels:
        mm.om.on_cancelled(c.client_id)
    for i in range(1, 6):
        t = NOW + i * S // 5
        mm.on_market_data(t)
        assert not mm.cycle(t)
    assert mm.om.live == {}
    assert mm.risk.denials[DenyReason.HALTED] == 5


def test_pull_quotes_cancels_without_changing_state() -> None:
    mm = make_mm()
    mm.on_market_data(NOW)
    first = mm.cycle(NOW)
    batch = mm.pull_quotes()
    assert sorted(c.client_id for c in batch.cancels) == sorted(p.client_id for p in first.places)
    assert mm.trading_state is TradingState.ACTIVE
    assert (mm.status()["our_bid"], mm.status()["our_ask"]) == (0, 0)


def test_stale_market_data_pulls_quotes_then_requotes_when_data_returns() -> None:
    mm = make_mm(stale_after_s=1.0)
    mm.on_market_data(NOW)
    first = mm.cycle(NOW)
    # exactly stale_after_s later the feed still counts as fresh
    assert not mm.cycle(NOW + S)
    batch = mm.cycle(NOW + 3 * S // 2)  # no market data for 1.5 s
    assert batch.places == []
    assert sorted(c.client_id for c in batch.cancels) == sorted(p.client_id for p in first.places)
    assert mm.risk.denials[DenyReason.STALE_MARKET_DATA] == 1
    assert mm.trading_state is TradingState.ACTIVE  # stale data pulls quotes, does not halt
    mm.on_market_data(NOW + 2 * S)
    again = mm.cycle(NOW + 2 * S)
    assert again.cancels == []
    assert len(again.places) == 4


def test_on_market_data_detects_mid_through_our_quotes() -> None:
    mm = make_mm()
    mm.on_market_data(NOW)
    mm.cycle(NOW)  # our bid 4997, ask 5003
    book = mm.book
    move_book(book, 4997, 4999)  # mid 4998: inside our quotes
    assert mm.on_market_data(NOW + S // 10) is False
    move_book(book, 4996, 4998)  # mid 4997: at our bid
    assert mm.on_market_data(NOW + S // 100) is False  # < requote_min_interval_s (0.02 s)
    assert mm.on_market_data(NOW + S // 10) is True
    assert mm.risk.last_data_ns == NOW + S // 10
    move_book(book, 5002, 5004)  # mid 5003: at our ask
    assert mm.on_market_data(NOW + S // 10) is True
    move_book(book, 4999, 5001)
    assert mm.on_market_data(NOW + S // 10) is False


def test_on_market_data_before_any_quote_is_false() -> None:
    mm = make_mm()
    move_book(mm.book, 10, 12)
    assert mm.on_market_data(NOW) is False


def _external_fill(fid: str, side: Side, lots: int) -> Fill:
    return Fill(fid, "ext", side, 5000, lots, 0.0, Liquidity.MAKER, NOW)


def test_engine_fill_dedupe_and_stats() -> None:
    mm = make_mm()
    mm.on_fill(_external_fill("x1", Side.BUY, 100))
    mm.on_fill(_external_fill("x1", Side.BUY, 100))  # the same venue fill again
    assert mm.om.position.lots == 100
    assert mm.stats.fills == 1


def test_reducing_state_quotes_only_the_reducing_side() -> None:
    mm = make_mm()
    mm.on_market_data(NOW)
    mm.on_fill(_external_fill("x1", Side.BUY, 150))
    mm.risk.reduce_only("test")
    batch = mm.cycle(NOW)
    assert batch.places
    assert all(p.side is Side.SELL for p in batch.places)
    # reducing sells are sized so that all of them filling lands at most at flat
    assert sum(p.lots for p in batch.places) <= 150


def test_reducing_state_can_reduce_a_small_position() -> None:
    mm = make_mm()
    mm.on_market_data(NOW)
    mm.on_fill(_external_fill("x1", Side.BUY, 50))
    mm.risk.reduce_only("test")
    batch = mm.cycle(NOW)
    assert batch.places, f"no reducing order placed; denials: {mm.risk.snapshot()['denials']}"
    assert all(p.side is Side.SELL for p in batch.places)
    assert sum(p.lots for p in batch.places) <= 50


# --- backtest ------------------------------------------------------------------------------
def _run(cfg: BacktestConfig) -> tuple[Backtest, BacktestResult]:
    bt = Backtest(cfg)
    return bt, bt.run()


@pytest.fixture(scope="module")
def short_run() -> tuple[Backtest, BacktestResult]:
    return _run(BacktestConfig(minutes=2, market=MarketParams(seed=1)))


@pytest.fixture(scope="module")
def tight_run() -> tuple[Backtest, BacktestResult]:
    cfg = BacktestConfig(
        minutes=2,
        market=MarketParams(seed=1, informed_rate=20, informed_edge=0.5),
        limits=RiskLimits(max_position_notional=150),
    )
    return _run(cfg)


def _stable(summary: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in summary.items() if k not in WALL_CLOCK_KEYS}


def test_backtest_is_deterministic(short_run: tuple[Backtest, BacktestResult]) -> None:
    _, res = short_run
    again = run_backtest(BacktestConfig(minutes=2, market=MarketParams(seed=1)))
    assert set(res.summary) >= WALL_CLOCK_KEYS
    assert _stable(again.summary) == _stable(res.summary)
    assert again.fills == res.fills
    assert again.series.position == res.series.position


def test_backtest_seed_matters(short_run: tuple[Backtest, BacktestResult]) -> None:
    _, res = short_run
    other = run_backtest(BacktestConfig(minutes=2, market=MarketParams(seed=2)))
    assert other.fills != res.fills


def test_backtest_fills_on_both_sides(short_run: tuple[Backtest, BacktestResult]) -> None:
    _, res = short_run
    sides = {side for _, side, _, _ in res.fills}
    assert sides == {1, -1}
    assert res.summary["fills"] == len(res.fills) > 0
    assert res.summary["volume_base"] == sum(lots for *_, lots in res.fills)


def test_backtest_final_position_is_sum_of_signed_fills(
    short_run: tuple[Backtest, BacktestResult],
) -> None:
    bt, res = short_run
    signed = sum(side * lots for _, side, _, lots in res.fills)
    assert bt.mm.om.position.lots == signed
    assert res.series.position[-1] == sum(
        side * lots for t, side, _, lots in res.fills if t < res.series.t[-1]
    )  # a sample is taken before any event at the same instant


def test_backtest_pnl_identity(short_run: tuple[Backtest, BacktestResult]) -> None:
    _, res = short_run
    s = res.summary
    assert s["pnl_realized"] + s["pnl_unrealized"] - s["fees"] == pytest.approx(
        s["pnl_total"], abs=1e-9
    )
    # all fills are maker fills at −0.5 bps of quote notional
    notional = sum(p * q for _, _, p, q in res.fills) * 0.0001
    assert s["volume_quote"] == pytest.approx(notional)
    assert s["fees"] == pytest.approx(-0.5e-4 * notional)
    assert s["fees"] < 0


def test_backtest_respects_position_limit(short_run: tuple[Backtest, BacktestResult]) -> None:
    bt, res = short_run
    limit = bt.cfg.limits.max_position_notional
    assert 0 < res.summary["max_position_notional"] <= limit


def _position_notional_at_each_fill(res: BacktestResult) -> list[float]:
    pos = 0
    out = []
    for _, side, price, lots in res.fills:
        pos += side * lots
        out.append(abs(pos) * price * 0.0001)
    return out


def test_tight_limit_holds_on_every_fill_under_informed_flow(
    tight_run: tuple[Backtest, BacktestResult],
) -> None:
    bt, res = tight_run
    assert len(res.fills) > 20
    notionals = _position_notional_at_each_fill(res)
    assert max(notionals) <= 150.0
    assert res.summary["max_position_notional"] == pytest.approx(max(notionals))
    assert res.summary["risk_denials"].get("position_limit", 0) > 0
    assert bt.mm.risk.denials[DenyReason.POSITION_LIMIT] > 0
    assert bt.mm.om.position.lots == sum(side * lots for _, side, _, lots in res.fills)


def test_backtest_config_validation() -> None:
    with pytest.raises(ValueError, match="minutes"):
        BacktestConfig(minutes=0)
    with pytest.raises(ValueError, match="quote_hz"):
        BacktestConfig(quote_hz=-1)
