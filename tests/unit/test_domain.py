"""Instrument conversions and fees, position accounting, order and side helpers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from flashmm.domain import Fill, Instrument, Liquidity, Order, OrderState, Position, Side

# tick 0.01, lot 0.1: one lot at one tick is worth 0.001 quote
INST = Instrument(
    symbol="TST/USD",
    base="TST",
    quote="USD",
    tick_size=Decimal("0.01"),
    lot_size=Decimal("0.1"),
    maker_fee_bps=Decimal("-1"),
    taker_fee_bps=Decimal("5"),
)


def _fill(side: Side, price: int, lots: int, fee: float = 0.0, n: int = 0) -> Fill:
    return Fill(
        fill_id=f"f{n}",
        client_id="c1",
        side=side,
        price=price,
        lots=lots,
        fee=fee,
        liquidity=Liquidity.MAKER,
        ts_ns=n,
    )


# --- Instrument ----------------------------------------------------------------------------


def test_instrument_float_views() -> None:
    assert INST.tick == 0.01
    assert INST.lot == 0.1
    assert INST.notional_per_tick_lot == pytest.approx(0.001)


@pytest.mark.parametrize(
    ("price", "ticks"),
    [
        ("1.23", 123),
        ("1.239", 123),  # rounds down, not to nearest
        ("1.2399999", 123),
        ("0.009", 0),
        ("0", 0),
        (Decimal("12.345"), 1234),
        (0.29, 29),  # 0.29 / 0.01 is 28.999... in binary floats; must still give 29
        (0.07, 7),
        (5, 500),
    ],
)
def test_price_to_ticks_rounds_down(price: Decimal | str | float, ticks: int) -> None:
    assert INST.price_to_ticks(price) == ticks


@pytest.mark.parametrize(
    ("size", "lots"),
    [("2.5", 25), ("2.59", 25), ("0.09", 0), (Decimal("0.3"), 3), (0.3, 3), (1, 10)],
)
def test_size_to_lots_rounds_down(size: Decimal | str | float, lots: int) -> None:
    assert INST.size_to_lots(size) == lots


def test_negative_price_and_size_are_refused() -> None:
    with pytest.raises(ValueError, match="negative price"):
        INST.price_to_ticks("-0.01")
    with pytest.raises(ValueError, match="negative size"):
        INST.size_to_lots(-1)


def test_ticks_and_lots_back_to_exact_decimals() -> None:
    assert INST.ticks_to_price(123) == Decimal("1.23")
    assert INST.lots_to_size(25) == Decimal("2.5")
    assert INST.price_to_ticks(INST.ticks_to_price(98_765)) == 98_765
    assert INST.size_to_lots(INST.lots_to_size(4_321)) == 4_321


def test_notional_and_fees() -> None:
    # 100 ticks = 1.00 USD, 50 lots = 5.0 TST -> 5.00 USD
    assert INST.notional(100, 50) == pytest.approx(5.0)
    # maker: -1 bps of 5.00 = -0.0005 (a rebate), taker: 5 bps = 0.0025
    assert INST.fee(100, 50, maker=True) == pytest.approx(-0.0005)
    assert INST.fee(100, 50, maker=False) == pytest.approx(0.0025)
    assert INST.fee(100, 50, maker=True) < 0


def test_default_fees_are_zero() -> None:
    inst = Instrument("X/Y", "X", "Y", Decimal("1"), Decimal("1"))
    assert inst.fee(1_000, 1_000, maker=True) == 0.0
    assert inst.fee(1_000, 1_000, maker=False) == 0.0


@pytest.mark.parametrize(
    ("tick", "lot", "field"),
    [("0", "1", "tick_size"), ("-0.1", "1", "tick_size"), ("1", "0", "lot_size")],
)
def test_instrument_rejects_non_positive_sizes(tick: str, lot: str, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Instrument("X/Y", "X", "Y", Decimal(tick), Decimal(lot))


# --- Position ------------------------------------------------------------------------------


def test_open_long_sets_average() -> None:
    pos = Position(INST)
    pos.apply(_fill(Side.BUY, 100, 10))
    assert pos.lots == 10
    assert pos.avg_price == 100.0
    assert pos.realized == 0.0
    assert pos.unrealized(100) == 0.0


def test_add_at_different_price_averages() -> None:
    pos = Position(INST)
    pos.apply(_fill(Side.BUY, 100, 10))
    pos.apply(_fill(Side.BUY, 104, 30))
    # (100*10 + 104*30) / 40 = 103
    assert pos.lots == 40
    assert pos.avg_price == pytest.approx(103.0)
    assert pos.realized == 0.0


def test_add_to_short_averages() -> None:
    pos = Position(INST)
    pos.apply(_fill(Side.SELL, 95, 20))
    pos.apply(_fill(Side.SELL, 99, 20))
    assert pos.lots == -40
    assert pos.avg_price == pytest.approx(97.0)


def test_partial_close_realizes_and_keeps_average() -> None:
    pos = Position(INST)
    pos.apply(_fill(Side.BUY, 100, 10))
    pos.apply(_fill(Side.BUY, 104, 30))
    pos.apply(_fill(Side.SELL, 110, 10))
    # (110 - 103) ticks * 10 lots * 0.001 = 0.07
    assert pos.realized == pytest.approx(0.07)
    assert pos.lots == 30
    assert pos.avg_price == pytest.approx(103.0)
    # mark 105: (105 - 103) * 30 * 0.001 = 0.06
    assert pos.unrealized(105) == pytest.approx(0.06)


def test_close_to_flat_resets_average() -> None:
    pos = Position(INST)
    pos.apply(_fill(Side.BUY, 100, 10))
    pos.apply(_fill(Side.BUY, 104, 30))
    pos.apply(_fill(Side.SELL, 110, 10))
    pos.apply(_fill(Side.SELL, 101, 30))
    # 0.07 + (101 - 103) * 30 * 0.001 = 0.07 - 0.06 = 0.01
    assert pos.realized == pytest.approx(0.01)
    assert pos.lots == 0
    assert pos.avg_price == 0.0
    assert pos.unrealized(500) == 0.0
    # reopening after flat starts a fresh average
    pos.apply(_fill(Side.SELL, 120, 5))
    assert (pos.lots, pos.avg_price) == (-5, 120.0)


def test_short_partial_cover_realizes() -> None:
    pos = Position(INST)
    pos.apply(_fill(Side.SELL, 95, 30))
    pos.apply(_fill(Side.BUY, 93, 10))
    # short: (93 - 95) * 10 * (-1) * 0.001 = +0.02
    assert pos.realized == pytest.approx(0.02)
    assert pos.lots == -20
    assert pos.avg_price == pytest.approx(95.0)


def test_flip_long_to_short_sets_new_average() -> None:
    pos = Position(INST)
    pos.apply(_fill(Side.BUY, 100, 20))
    pos.apply(_fill(Side.SELL, 95, 50))
    # closes 20 at a 5-tick loss: -5 * 20 * 0.001 = -0.1; the other 30 open short at 95
    assert pos.realized == pytest.approx(-0.1)
    assert pos.lots == -30
    assert pos.avg_price == 95.0
    # short 30 from 95 marked at 90: (90 - 95) * -30 * 0.001 = +0.15
    assert pos.unrealized(90) == pytest.approx(0.15)


def test_flip_short_to_long_sets_new_average() -> None:
    pos = Position(INST)
    pos.apply(_fill(Side.SELL, 200, 10))
    pos.apply(_fill(Side.BUY, 190, 25))
    # covers 10 with a 10-tick gain: +10 * 10 * 0.001 = 0.1; 15 long at 190
    assert pos.realized == pytest.approx(0.1)
    assert pos.lots == 15
    assert pos.avg_price == 190.0


def test_unrealized_long_and_short_signs() -> None:
    long = Position(INST)
    long.apply(_fill(Side.BUY, 100, 10))
    # (90 - 100) * 10 * 0.001 = -0.1; (110.5 - 100) * 10 * 0.001 = 0.105
    assert long.unrealized(90) == pytest.approx(-0.1)
    assert long.unrealized(110.5) == pytest.approx(0.105)
    short = Position(INST)
    short.apply(_fill(Side.SELL, 100, 10))
    assert short.unrealized(90) == pytest.approx(0.1)
    assert short.unrealized(110) == pytest.approx(-0.1)
    assert short.notional(110) == pytest.approx(10 * 110 * 0.001)


def test_fees_counts_and_net_pnl() -> None:
    pos = Position(INST)
    pos.apply(_fill(Side.BUY, 100, 10, fee=0.004, n=1))  # taker fee
    pos.apply(_fill(Side.SELL, 110, 4, fee=-0.0002, n=2))  # maker rebate
    assert pos.fees == pytest.approx(0.0038)
    assert pos.volume_lots == 14
    assert pos.fill_count == 2
    # realized: (110 - 100) * 4 * 0.001 = 0.04 (fees excluded)
    assert pos.realized == pytest.approx(0.04)
    # unrealized at 105: (105 - 100) * 6 * 0.001 = 0.03
    # net = 0.04 + 0.03 - 0.0038 = 0.0662
    assert pos.net_pnl(105) == pytest.approx(0.0662)


def test_round_trip_with_only_fees_loses_the_fees() -> None:
    pos = Position(INST)
    pos.apply(_fill(Side.BUY, 100, 10, fee=0.01))
    pos.apply(_fill(Side.SELL, 100, 10, fee=0.01))
    assert pos.lots == 0
    assert pos.realized == 0.0
    assert pos.net_pnl(123) == pytest.approx(-0.02)


# --- Side / Order / OrderState ----------------------------------------------------------------


def test_side_values_and_opposite() -> None:
    assert int(Side.BUY) == 1
    assert int(Side.SELL) == -1
    assert Side.BUY.opposite is Side.SELL
    assert Side.SELL.opposite is Side.BUY


def test_order_defaults_and_remaining() -> None:
    o = Order(client_id="c1", side=Side.BUY, price=100, lots=10)
    assert o.state is OrderState.PENDING_NEW
    assert o.remaining == 10
    o.filled_lots = 4
    assert o.remaining == 6


@pytest.mark.parametrize(
    ("state", "live"),
    [
        (OrderState.PENDING_NEW, True),
        (OrderState.OPEN, True),
        (OrderState.PARTIALLY_FILLED, True),
        (OrderState.PENDING_CANCEL, True),
        (OrderState.FILLED, False),
        (OrderState.CANCELLED, False),
        (OrderState.REJECTED, False),
    ],
)
def test_order_state_is_live(state: OrderState, live: bool) -> None:
    assert state.is_live is live
