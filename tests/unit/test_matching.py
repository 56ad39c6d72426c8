"""Hand-computed unit tests for the price-time-priority matching engine."""

from __future__ import annotations

import pytest

from flashmm.book.l2 import L2Book
from flashmm.sim.matching import Exchange, Trade

BUY, SELL = 1, -1


def _fills(ex: Exchange) -> list[tuple[int, int, int]]:
    """(price, lots, maker_oid) of every trade so far."""
    return [(t.price, t.lots, t.maker_oid) for t in ex.trades]


# --- time priority -------------------------------------------------------------------------


def test_fifo_at_one_level() -> None:
    ex = Exchange()
    a, _ = ex.place_limit(1, SELL, 100, 5, tag="a")
    b, _ = ex.place_limit(2, SELL, 100, 3, tag="b")
    c, _ = ex.place_limit(3, SELL, 100, 4, tag="c")
    assert ex.market(9, BUY, 7, tag="t") == 7
    assert ex.trades == [
        Trade(100, 5, BUY, a, 1, "a", 0, 4, 9, "t"),
        Trade(100, 2, BUY, b, 2, "b", 1, 4, 9, "t"),
    ]
    assert ex.book.lots_at(SELL, 100) == 5  # b's 1 + c's 4
    assert a not in ex.orders
    assert ex.orders[b].lots == 1
    assert ex.orders[c].lots == 4
    # next taker continues with b, then c
    assert ex.market(9, BUY, 2) == 2
    assert _fills(ex)[2:] == [(100, 1, b), (100, 1, c)]
    assert ex.orders[c].lots == 3


def test_later_order_at_same_price_waits_even_if_larger() -> None:
    ex = Exchange()
    small, _ = ex.place_limit(1, BUY, 50, 1)
    big, _ = ex.place_limit(2, BUY, 50, 100)
    ex.market(3, SELL, 1)
    assert _fills(ex) == [(50, 1, small)]
    assert ex.orders[big].lots == 100


# --- price priority --------------------------------------------------------------------------


def test_price_priority_beats_time_priority_for_asks() -> None:
    ex = Exchange()
    early, _ = ex.place_limit(1, SELL, 102, 2)
    late, _ = ex.place_limit(2, SELL, 101, 2)
    oid, rest = ex.place_limit(3, BUY, 102, 3)
    assert rest == 0
    assert _fills(ex) == [(101, 2, late), (102, 1, early)]
    assert ex.book.snapshot() == ([], [(102, 1)])
    assert oid not in ex.orders


def test_price_priority_for_bids_and_sell_limit_rests_remainder() -> None:
    ex = Exchange()
    lo, _ = ex.place_limit(1, BUY, 99, 4)
    hi, _ = ex.place_limit(2, BUY, 100, 3)
    ex.place_limit(2, BUY, 97, 8)  # below the sell limit: untouched
    oid, rest = ex.place_limit(3, SELL, 99, 10)
    assert rest == 3
    assert _fills(ex) == [(100, 3, hi), (99, 4, lo)]
    assert all(t.aggressor == SELL and t.taker_oid == oid for t in ex.trades)
    assert ex.book.snapshot() == ([(97, 8)], [(99, 3)])
    assert ex.orders[oid].lots == 3
    assert ex.orders[oid].side == SELL


# --- partial fills ---------------------------------------------------------------------------


def test_crossing_limit_partially_fills_then_rests_at_its_limit() -> None:
    ex = Exchange()
    a1, _ = ex.place_limit(1, SELL, 100, 3)
    a2, _ = ex.place_limit(1, SELL, 101, 2)
    a3, _ = ex.place_limit(1, SELL, 102, 5)
    oid, rest = ex.place_limit(2, BUY, 101, 10)
    assert rest == 5
    assert _fills(ex) == [(100, 3, a1), (101, 2, a2)]
    assert ex.book.snapshot() == ([(101, 5)], [(102, 5)])
    assert (ex.book.best_bid, ex.book.best_ask) == (101, 102)
    assert not ex.book.crossed()
    assert ex.orders[a3].lots == 5
    assert (ex.orders[oid].side, ex.orders[oid].price, ex.orders[oid].lots) == (BUY, 101, 5)


def test_partially_filled_maker_keeps_its_place_and_reports_left() -> None:
    ex = Exchange()
    m, _ = ex.place_limit(1, SELL, 100, 10)
    ex.market(2, BUY, 4)
    ex.market(3, BUY, 5)
    assert [t.maker_left for t in ex.trades] == [6, 1]
    assert ex.orders[m].lots == 1
    assert ex.book.lots_at(SELL, 100) == 1


# --- market orders ---------------------------------------------------------------------------


def test_market_buy_sweeps_several_levels() -> None:
    ex = Exchange()
    a, _ = ex.place_limit(1, SELL, 100, 3)
    b, _ = ex.place_limit(1, SELL, 102, 4)
    c, _ = ex.place_limit(1, SELL, 105, 2)
    assert ex.market(2, BUY, 8) == 8
    assert _fills(ex) == [(100, 3, a), (102, 4, b), (105, 1, c)]
    assert ex.book.snapshot() == ([], [(105, 1)])
    assert ex.book.best_ask == 105


def test_market_sell_larger_than_book_fills_what_exists() -> None:
    ex = Exchange()
    ex.place_limit(1, BUY, 100, 3)
    ex.place_limit(1, BUY, 90, 4)
    assert ex.market(2, SELL, 20) == 7
    assert _fills(ex) == [(100, 3, 1), (90, 4, 2)]
    assert ex.book.snapshot() == ([], [])
    assert ex.book.best_bid == 0
    assert ex.orders == {}
    assert ex.market(2, SELL, 5) == 0  # empty book: nothing, and no trade
    assert len(ex.trades) == 2


def test_market_order_never_rests() -> None:
    ex = Exchange()
    ex.place_limit(1, SELL, 100, 1)
    ex.market(2, BUY, 3)
    assert ex.orders == {}
    assert ex.book.snapshot() == ([], [])


# --- post-only -------------------------------------------------------------------------------


@pytest.mark.parametrize(("side", "price"), [(BUY, 101), (BUY, 150), (SELL, 99), (SELL, 1)])
def test_post_only_that_would_cross_is_refused_and_changes_nothing(side: int, price: int) -> None:
    ex = Exchange(record_deltas=True)
    b, _ = ex.place_limit(1, BUY, 99, 5)
    a, _ = ex.place_limit(1, SELL, 101, 5)
    before = (ex.book.snapshot(), dict(ex.orders), list(ex.deltas))
    assert ex.place_limit(2, side, price, 3, post_only=True) == (0, 0)
    assert (ex.book.snapshot(), dict(ex.orders), list(ex.deltas)) == before
    assert ex.trades == []
    # the refusal did not consume an order id
    oid, _ = ex.place_limit(2, BUY, 90, 1)
    assert oid == a + 1 == b + 2


@pytest.mark.parametrize(("side", "price"), [(BUY, 100), (SELL, 100)])
def test_post_only_that_does_not_cross_rests(side: int, price: int) -> None:
    ex = Exchange()
    ex.place_limit(1, BUY, 99, 5)
    ex.place_limit(1, SELL, 101, 5)
    oid, rest = ex.place_limit(2, side, price, 3, post_only=True)
    assert oid > 0
    assert rest == 3
    assert ex.book.lots_at(side, 100) == 3
    assert ex.trades == []


def test_post_only_on_empty_opposite_side_rests() -> None:
    ex = Exchange()
    oid, rest = ex.place_limit(1, BUY, 500, 2, post_only=True)
    assert (oid, rest) == (1, 2)
    assert ex.book.best_bid == 500


# --- cancel --------------------------------------------------------------------------------


def test_cancel_unknown_and_filled_orders_returns_zero() -> None:
    ex = Exchange()
    assert ex.cancel(12345) == 0
    m, _ = ex.place_limit(1, SELL, 100, 2)
    ex.market(2, BUY, 2)
    assert ex.cancel(m) == 0
    assert ex.book.snapshot() == ([], [])


def test_cancel_twice_returns_zero_second_time() -> None:
    ex = Exchange()
    oid, _ = ex.place_limit(1, BUY, 100, 4)
    assert ex.cancel(oid) == 4
    assert ex.cancel(oid) == 0
    assert ex.book.snapshot() == ([], [])


def test_cancel_updates_aggregate_and_best() -> None:
    ex = Exchange()
    a, _ = ex.place_limit(1, BUY, 100, 5)
    b, _ = ex.place_limit(2, BUY, 100, 3)
    ex.place_limit(3, BUY, 98, 7)
    assert ex.cancel(a) == 5
    assert ex.book.lots_at(BUY, 100) == 3
    assert ex.book.best_bid == 100
    assert ex.cancel(b) == 3
    assert ex.book.lots_at(BUY, 100) == 0
    assert ex.book.best_bid == 98
    assert ex.book.snapshot() == ([(98, 7)], [])


def test_cancel_partially_filled_returns_remaining() -> None:
    ex = Exchange()
    m, _ = ex.place_limit(1, SELL, 100, 10)
    ex.market(2, BUY, 4)
    assert ex.cancel(m) == 6
    assert ex.book.snapshot() == ([], [])


def test_cancelled_order_is_skipped_by_later_takers() -> None:
    ex = Exchange()
    a, _ = ex.place_limit(1, SELL, 100, 5)
    b, _ = ex.place_limit(2, SELL, 100, 3)
    ex.cancel(a)
    assert ex.market(3, BUY, 10) == 3
    assert _fills(ex) == [(100, 3, b)]
    assert ex.book.snapshot() == ([], [])


def test_level_emptied_by_cancel_can_be_reused() -> None:
    ex = Exchange()
    a, _ = ex.place_limit(1, SELL, 100, 5)
    ex.cancel(a)
    b, _ = ex.place_limit(2, SELL, 100, 2)
    assert ex.queue_ahead(b) == 0
    assert ex.market(3, BUY, 5) == 2
    assert _fills(ex) == [(100, 2, b)]


# --- queue position -------------------------------------------------------------------------


def test_queue_ahead_counts_live_lots_in_front() -> None:
    ex = Exchange()
    a, _ = ex.place_limit(1, BUY, 100, 5)
    b, _ = ex.place_limit(2, BUY, 100, 3)
    c, _ = ex.place_limit(3, BUY, 100, 4)
    other, _ = ex.place_limit(3, BUY, 99, 50)  # other level: never counted
    assert [ex.queue_ahead(o) for o in (a, b, c, other)] == [0, 5, 8, 0]
    ex.cancel(b)
    assert ex.queue_ahead(c) == 5
    ex.market(4, SELL, 2)  # a: 5 -> 3
    assert ex.queue_ahead(c) == 3
    ex.market(4, SELL, 3)  # a filled
    assert ex.queue_ahead(c) == 0
    assert ex.queue_ahead(a) == 0  # no longer resting
    assert ex.queue_ahead(999) == 0


# --- L2 deltas ------------------------------------------------------------------------------


def test_deltas_hand_computed() -> None:
    ex = Exchange(record_deltas=True)
    ex.place_limit(1, SELL, 100, 5)
    b, _ = ex.place_limit(2, SELL, 100, 3)
    ex.market(3, BUY, 6)
    ex.cancel(b)
    assert ex.deltas == [(SELL, 100, 5), (SELL, 100, 8), (SELL, 100, 2), (SELL, 100, 0)]


def test_deltas_not_recorded_by_default() -> None:
    ex = Exchange()
    ex.place_limit(1, SELL, 100, 5)
    ex.market(3, BUY, 2)
    assert ex.deltas == []


def test_replaying_deltas_rebuilds_the_final_book() -> None:
    ex = Exchange(record_deltas=True)
    ex.place_limit(1, BUY, 100, 5)
    x, _ = ex.place_limit(2, BUY, 99, 3)
    ex.place_limit(1, SELL, 102, 4)
    ex.place_limit(2, SELL, 103, 6)
    ex.place_limit(3, BUY, 103, 7)  # takes 102x4, 103x3, nothing rests
    ex.place_limit(3, SELL, 99, 9)  # takes 100x5, 99x3, rests 1 @ 99
    ex.cancel(x)  # already filled: no delta
    ex.place_limit(1, BUY, 95, 2)
    ex.market(4, BUY, 1)
    replay = L2Book()
    for side, price, lots in ex.deltas:
        replay.set_level(side, price, lots)
    assert replay.snapshot() == ex.book.snapshot()
    assert ex.book.snapshot() == ([(95, 2)], [(103, 3)])
    assert (replay.best_bid, replay.best_ask) == (95, 103)


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(("price", "lots"), [(100, 0), (100, -1), (0, 5), (-3, 5)])
def test_place_limit_rejects_invalid(price: int, lots: int) -> None:
    ex = Exchange()
    with pytest.raises(ValueError, match="invalid order"):
        ex.place_limit(1, BUY, price, lots)
    assert ex.orders == {}
    assert ex.book.snapshot() == ([], [])
    assert ex.place_limit(1, BUY, 10, 1)[0] == 1  # no order id consumed


@pytest.mark.parametrize("lots", [0, -5])
def test_market_rejects_invalid(lots: int) -> None:
    ex = Exchange()
    ex.place_limit(1, SELL, 100, 3)
    with pytest.raises(ValueError, match="invalid market order"):
        ex.market(2, BUY, lots)
    assert ex.trades == []
    assert ex.book.lots_at(SELL, 100) == 3
