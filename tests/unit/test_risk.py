"""Pre-trade risk: each deny reason, worst-case position, trading states, rate window."""

from __future__ import annotations

import dataclasses

import pytest

from hotpath.risk import DenyReason, Exposure, RiskEngine, RiskLimits, TradingState

S = 1_000_000_000
NOW = 100 * S
LOT_VALUE = 0.0001  # SEI_USDC: USDC per lot per tick
PX = 5000  # 0.5 USDC per lot at this price
FLAT = Exposure(0, 0, 0, 0.0)
BUY, SELL = 1, -1


def engine(**limits: float) -> RiskEngine:
    r = RiskEngine(RiskLimits(**limits), LOT_VALUE)  # type: ignore[arg-type]
    r.last_data_ns = NOW
    return r


def only_denial(r: RiskEngine, reason: DenyReason, n: int = 1) -> None:
    assert r.denials[reason] == n
    assert sum(r.denials.values()) == n


# --- one test per deny reason --------------------------------------------------------------
def test_allowed_order_passes() -> None:
    r = engine()
    assert r.check_place(BUY, PX, 100, FLAT, NOW) is None
    assert sum(r.denials.values()) == 0


def test_halted() -> None:
    r = engine()
    r.halt("operator")
    assert r.state is TradingState.HALTED
    assert r.halt_reason == "operator"
    assert r.check_place(SELL, PX, 1, FLAT, NOW) is DenyReason.HALTED
    only_denial(r, DenyReason.HALTED)


def test_reduce_only() -> None:
    r = engine()
    r.reduce_only("drawdown")
    assert r.state is TradingState.REDUCING
    assert r.check_place(BUY, PX, 10, FLAT, NOW) is DenyReason.REDUCE_ONLY  # flat: nothing to cut
    only_denial(r, DenyReason.REDUCE_ONLY)


def test_stale_market_data() -> None:
    r = engine(stale_after_s=1.0)
    assert r.check_place(BUY, PX, 10, FLAT, NOW + S) is None  # exactly 1 s old: still fresh
    assert r.check_place(BUY, PX, 10, FLAT, NOW + S + 1) is DenyReason.STALE_MARKET_DATA
    only_denial(r, DenyReason.STALE_MARKET_DATA)


def test_volatility_breaker() -> None:
    r = engine(vol_breaker_sigma=6.0, vol_breaker_cooldown_s=10.0)
    r.on_volatility(5.99, NOW)
    assert not r.breaker_tripped(NOW)
    r.on_volatility(6.0, NOW)
    r.last_data_ns = NOW + 5 * S
    assert r.check_place(BUY, PX, 10, FLAT, NOW + 5 * S) is DenyReason.VOLATILITY_BREAKER
    only_denial(r, DenyReason.VOLATILITY_BREAKER)
    r.last_data_ns = NOW + 10 * S
    assert r.check_place(BUY, PX, 10, FLAT, NOW + 10 * S) is None  # cooldown over


def test_order_notional() -> None:
    r = engine(max_order_notional=500.0)
    assert r.check_place(BUY, PX, 1000, FLAT, NOW) is None  # 1000 × 0.5 = 500: at the limit
    assert r.check_place(BUY, PX, 1001, FLAT, NOW) is DenyReason.ORDER_NOTIONAL  # 500.5
    only_denial(r, DenyReason.ORDER_NOTIONAL)


def test_position_limit() -> None:
    r = engine(max_position_notional=2000.0)
    # long 3500 lots (1750 USDC): buying 501 would make 4001 × 0.5 = 2000.5
    exp = Exposure(3500, 0, 0, 0.0)
    assert r.check_place(BUY, PX, 501, exp, NOW) is DenyReason.POSITION_LIMIT
    only_denial(r, DenyReason.POSITION_LIMIT)
    assert r.check_place(BUY, PX, 500, exp, NOW) is None  # exactly 2000


def test_open_notional() -> None:
    r = engine(max_open_notional=3000.0)
    # 2900 lots live each side at 5000 = 2900 USDC open, worst long = 2900 + 400 lots = 1650 USDC
    exp = Exposure(0, 2900, 2900, 2900.0)
    assert r.check_place(BUY, PX, 400, exp, NOW) is DenyReason.OPEN_NOTIONAL  # 2900 + 200
    only_denial(r, DenyReason.OPEN_NOTIONAL)
    assert r.check_place(BUY, PX, 200, exp, NOW) is None  # 2900 + 100 = 3000: at the limit


def test_order_rate() -> None:
    r = engine(max_actions_per_s=3)
    for _ in range(3):
        assert r.check_place(BUY, PX, 1, FLAT, NOW) is None
    assert r.check_place(BUY, PX, 1, FLAT, NOW) is DenyReason.ORDER_RATE
    only_denial(r, DenyReason.ORDER_RATE)


def test_every_deny_reason_is_covered() -> None:
    # guard: adding a reason without a test here should fail loudly
    assert {d.name for d in DenyReason} == {
        "HALTED",
        "REDUCE_ONLY",
        "STALE_MARKET_DATA",
        "VOLATILITY_BREAKER",
        "ORDER_NOTIONAL",
        "POSITION_LIMIT",
        "OPEN_NOTIONAL",
        "ORDER_RATE",
    }


# --- counters and ordering -----------------------------------------------------------------
def test_denial_counters_accumulate_per_reason() -> None:
    r = engine(max_order_notional=100.0)
    for _ in range(3):
        r.check_place(BUY, PX, 1000, FLAT, NOW)
    r.check_place(BUY, PX, 10, FLAT, NOW + 5 * S)  # stale
    assert r.denials[DenyReason.ORDER_NOTIONAL] == 3
    assert r.denials[DenyReason.STALE_MARKET_DATA] == 1
    assert r.snapshot()["denials"] == {"order_notional": 3, "stale_market_data": 1}


def test_denied_orders_do_not_use_the_rate_budget() -> None:
    r = engine(max_actions_per_s=2, max_order_notional=100.0)
    for _ in range(5):
        assert r.check_place(BUY, PX, 1000, FLAT, NOW) is DenyReason.ORDER_NOTIONAL
    assert r.check_place(BUY, PX, 1, FLAT, NOW) is None
    assert r.check_place(BUY, PX, 1, FLAT, NOW) is None
    assert r.check_place(BUY, PX, 1, FLAT, NOW) is DenyReason.ORDER_RATE


# --- worst-case position -------------------------------------------------------------------
def test_position_check_counts_live_orders_on_the_same_side() -> None:
    r = engine(max_position_notional=2000.0)
    # alone, 3000 + 999 = 3999 lots = 1999.5 USDC passes …
    assert r.check_place(BUY, PX, 999, Exposure(3000, 0, 0, 0.0), NOW) is None
    # … but 100 lots of live bids could fill too: 4099 lots = 2049.5 USDC
    exp = Exposure(3000, 100, 0, 50.0)
    assert r.check_place(BUY, PX, 999, exp, NOW) is DenyReason.POSITION_LIMIT


def test_position_check_for_sells_uses_live_sells_only() -> None:
    r = engine(max_position_notional=2000.0)
    # short 3000, 100 live sells: another 999 sells → −4099 lots
    exp = Exposure(-3000, 5000, 100, 2550.0)
    assert r.check_place(SELL, PX, 999, exp, NOW) is DenyReason.POSITION_LIMIT
    # live buys never make the short side worse
    assert r.check_place(SELL, PX, 899, exp, NOW) is None  # −3999 lots = 1999.5 USDC


def test_position_limit_is_symmetric_from_flat() -> None:
    r = engine(max_position_notional=100.0)
    assert r.check_place(BUY, PX, 200, FLAT, NOW) is None  # 100 USDC
    assert r.check_place(SELL, PX, 200, FLAT, NOW) is None
    assert r.check_place(BUY, PX, 201, FLAT, NOW) is DenyReason.POSITION_LIMIT
    assert r.check_place(SELL, PX, 201, FLAT, NOW) is DenyReason.POSITION_LIMIT


def test_reducing_order_is_allowed_when_position_is_already_over_limit() -> None:
    r = engine(max_position_notional=2000.0)
    # long 5000 lots at 5000 ticks = 2500 USDC (over the limit after a price rise)
    exp = Exposure(5000, 0, 0, 0.0)
    # selling 100 lots takes the worst case to 4900 lots: strictly less risk than now
    assert r.check_place(SELL, PX, 100, exp, NOW) is None


def test_reduce_only_allows_only_shrinking_orders() -> None:
    r = engine()
    r.reduce_only("drawdown")
    long_ = Exposure(10, 0, 0, 0.0)
    assert r.check_place(BUY, PX, 1, long_, NOW) is DenyReason.REDUCE_ONLY
    assert r.check_place(SELL, PX, 5, long_, NOW) is None
    assert r.check_place(SELL, PX, 10, long_, NOW) is None  # to flat
    assert r.check_place(SELL, PX, 11, long_, NOW) is DenyReason.REDUCE_ONLY  # → −1: a flip
    assert r.check_place(SELL, PX, 20, long_, NOW) is DenyReason.REDUCE_ONLY  # → −10: a flip
    # live sells count: 8 resting + 2 new → flat ok; 8 + 3 → −1 would flip
    with_live = Exposure(10, 0, 8, 4.0)
    assert r.check_place(SELL, PX, 2, with_live, NOW) is None
    assert r.check_place(SELL, PX, 3, with_live, NOW) is DenyReason.REDUCE_ONLY
    short = Exposure(-10, 0, 0, 0.0)
    assert r.check_place(SELL, PX, 1, short, NOW) is DenyReason.REDUCE_ONLY
    assert r.check_place(BUY, PX, 7, short, NOW) is None
    assert r.check_place(BUY, PX, 11, short, NOW) is DenyReason.REDUCE_ONLY


# --- PnL → state ---------------------------------------------------------------------------
def test_daily_loss_halts() -> None:
    r = engine(daily_loss_limit=200.0, max_drawdown=1000.0)
    r.on_pnl(-199.0)
    assert r.state is TradingState.ACTIVE
    r.on_pnl(-200.0)
    assert r.state is TradingState.HALTED
    assert r.halt_reason == "daily_loss_limit"
    r.on_pnl(50.0)  # recovering does not leave HALTED
    assert r.state is TradingState.HALTED


def test_daily_loss_halts_even_when_reducing() -> None:
    r = engine(daily_loss_limit=200.0, max_drawdown=50.0)
    r.on_pnl(-60.0)
    assert r.state is TradingState.REDUCING
    r.on_pnl(-250.0)
    assert r.state is TradingState.HALTED


def test_drawdown_moves_to_reducing() -> None:
    r = engine(daily_loss_limit=200.0, max_drawdown=150.0)
    r.on_pnl(100.0)
    r.on_pnl(-49.0)  # drawdown 149 from the peak, day loss only 49
    assert r.state is TradingState.ACTIVE
    r.on_pnl(-50.0)  # drawdown 150
    assert r.state is TradingState.REDUCING
    assert r.halt_reason == "max_drawdown"
    assert r.snapshot()["peak_pnl"] == 100.0


def test_drawdown_does_not_downgrade_halted() -> None:
    r = engine()
    r.halt("kill")
    r.reduce_only("x")
    r.on_pnl(-160.0)
    assert r.state is TradingState.HALTED
    assert r.halt_reason == "kill"


def test_resume_returns_to_active() -> None:
    r = engine()
    r.halt("kill")
    r.resume()
    assert r.state is TradingState.ACTIVE
    assert r.halt_reason == ""
    assert r.check_place(BUY, PX, 10, FLAT, NOW) is None
    r.reduce_only("dd")
    r.resume()
    assert r.state is TradingState.ACTIVE


def test_daily_reset_rearms_loss_counters() -> None:
    r = engine(daily_loss_limit=200.0, max_drawdown=150.0)
    r.on_pnl(-140.0)
    assert r.state is TradingState.ACTIVE
    r.daily_reset(-140.0)
    snap = r.snapshot()
    assert (snap["day_start_pnl"], snap["peak_pnl"]) == (-140.0, -140.0)
    r.on_pnl(-280.0)  # 140 down on the new day: neither limit crossed
    assert r.state is TradingState.ACTIVE
    r.on_pnl(-290.0)  # 150 from the new peak: drawdown, but day loss 150 < 200
    assert r.state is TradingState.REDUCING
    r.on_pnl(-340.0)  # 200 on the new day → halt (without the reset: 340)
    assert r.state is TradingState.HALTED


def test_without_daily_reset_the_same_path_halts_earlier() -> None:
    r = engine(daily_loss_limit=200.0, max_drawdown=150.0)
    r.on_pnl(-140.0)
    r.on_pnl(-200.0)
    assert r.state is TradingState.HALTED


# --- rate window ---------------------------------------------------------------------------
def test_rate_window_slides_after_one_second() -> None:
    r = engine(max_actions_per_s=2, stale_after_s=10.0)
    assert r.check_place(BUY, PX, 1, FLAT, NOW) is None
    assert r.check_place(BUY, PX, 1, FLAT, NOW + 500_000_000) is None
    assert r.check_place(BUY, PX, 1, FLAT, NOW + 999_999_999) is DenyReason.ORDER_RATE
    # the first action leaves the window exactly 1 s later
    assert r.check_place(BUY, PX, 1, FLAT, NOW + S) is None
    assert r.check_place(BUY, PX, 1, FLAT, NOW + S + 1) is DenyReason.ORDER_RATE
    assert r.check_place(BUY, PX, 1, FLAT, NOW + S + 500_000_000) is None


def test_cancels_use_the_rate_budget() -> None:
    r = engine(max_actions_per_s=3)
    r.count_cancel(NOW)
    r.count_cancel(NOW)
    assert r.check_place(BUY, PX, 1, FLAT, NOW) is None
    assert r.check_place(BUY, PX, 1, FLAT, NOW) is DenyReason.ORDER_RATE


# --- cycle gate ----------------------------------------------------------------------------
def test_gate_passes_when_healthy() -> None:
    r = engine()
    assert r.gate(NOW) is None
    assert sum(r.denials.values()) == 0


def test_gate_reasons_and_priority() -> None:
    r = engine(stale_after_s=1.0, vol_breaker_cooldown_s=10.0)
    r.on_volatility(100.0, NOW)
    assert r.gate(NOW) is DenyReason.VOLATILITY_BREAKER
    assert r.gate(NOW + 2 * S) is DenyReason.STALE_MARKET_DATA  # stale before breaker
    r.halt("kill")
    assert r.gate(NOW) is DenyReason.HALTED  # halted before everything
    assert r.denials[DenyReason.VOLATILITY_BREAKER] == 1
    assert r.denials[DenyReason.STALE_MARKET_DATA] == 1
    assert r.denials[DenyReason.HALTED] == 1


def test_gate_ignores_reducing_state() -> None:
    r = engine()
    r.reduce_only("dd")
    assert r.gate(NOW) is None  # reducing quotes are filtered per order, not per cycle


# --- limits --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(RiskLimits)])
@pytest.mark.parametrize("value", [0, -1])
def test_risk_limits_must_be_positive(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"risk\\.{name}"):
        RiskLimits(**{name: value})  # type: ignore[arg-type]


def test_risk_limits_as_dict_round_trips() -> None:
    lim = RiskLimits(max_position_notional=150.0)
    assert RiskLimits(**lim.as_dict()) == lim
    assert lim.as_dict()["max_position_notional"] == 150.0
