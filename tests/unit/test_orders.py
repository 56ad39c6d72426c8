"""Order manager: diff policy, order lifecycle, fill de-duplication, exposure, reconcile."""

from __future__ import annotations

import pytest

from flashmm.book.l2 import L2Book
from flashmm.domain.instrument import SEI_USDC
from flashmm.domain.orders import Fill, Liquidity, Order, OrderState, Side
from flashmm.venue.base import CancelOrder, OpenOrder, PlaceOrder
from hotpath.orders import OrderManager
from hotpath.quoting.quoter import Quote
from hotpath.risk import Exposure

NOW = 100_000_000_000


def om_with(*quotes: Quote) -> tuple[OrderManager, list[Order]]:
    om = OrderManager(SEI_USDC)
    return om, [om.new_order(q, NOW) for q in quotes]


def fill(fid: str, o: Order, lots: int, price: int | None = None) -> Fill:
    px = o.price if price is None else price
    return Fill(
        fid,
        o.client_id,
        o.side,
        px,
        lots,
        SEI_USDC.fee(px, lots, maker=True),
        Liquidity.MAKER,
        NOW,
    )


# --- new orders ----------------------------------------------------------------------------
def test_new_order_is_pending_with_unique_client_ids() -> None:
    om, (a, b) = om_with(Quote(1, 0, 4997, 200), Quote(-1, 1, 5004, 150))
    assert (a.client_id, b.client_id) == ("fmm-1", "fmm-2")
    assert a.state is OrderState.PENDING_NEW
    assert (a.side, a.price, a.lots, a.level, a.created_ns) == (Side.BUY, 4997, 200, 0, NOW)
    assert (b.side, b.level) == (Side.SELL, 1)
    assert set(om.live) == {"fmm-1", "fmm-2"}
    assert om.to_place(b) == PlaceOrder("fmm-2", Side.SELL, 5004, 150, post_only=True)


def test_client_id_prefix() -> None:
    om = OrderManager(SEI_USDC, prefix="mm7")
    assert om.new_order(Quote(1, 0, 10, 1), NOW).client_id == "mm7-1"


# --- diff ----------------------------------------------------------------------------------
def test_diff_keeps_same_price_within_tolerance() -> None:
    om, _ = om_with(Quote(1, 0, 4997, 200), Quote(-1, 0, 5003, 200))
    # 200 vs 160: |40| <= 0.25 × 160 = 40 → kept; 200 vs 250: |50| <= 62.5 → kept
    cancels, places = om.diff([Quote(1, 0, 4997, 160), Quote(-1, 0, 5003, 250)], 0.25)
    assert cancels == []
    assert places == []


def test_diff_uses_remaining_size_for_tolerance() -> None:
    om, (b,) = om_with(Quote(1, 0, 4997, 200))
    om.on_fill(fill("f1", b, 120))  # 80 left
    cancels, places = om.diff([Quote(1, 0, 4997, 200)], 0.25)  # |80 − 200| > 50
    assert cancels == [b]
    assert places == [Quote(1, 0, 4997, 200)]


def test_diff_cancels_outside_size_tolerance() -> None:
    om, (b,) = om_with(Quote(1, 0, 4997, 200))
    desired = Quote(1, 0, 4997, 159)  # |41| > 0.25 × 159 = 39.75
    cancels, places = om.diff([desired], 0.25)
    assert cancels == [b]
    assert places == [desired]


def test_diff_cancels_other_prices_and_places_missing() -> None:
    om, (b0, a0, b1) = om_with(
        Quote(1, 0, 4997, 200), Quote(-1, 0, 5003, 200), Quote(1, 1, 4996, 200)
    )
    desired = [
        Quote(1, 0, 4997, 200),  # b0's price → kept
        Quote(-1, 0, 5002, 200),  # new price → placed
        Quote(1, 1, 4995, 200),  # b1 (4996) is not wanted → cancelled; 4995 placed
        Quote(-1, 1, 5003, 200),  # a0's price at another level: matched by (side, price)
    ]
    cancels, places = om.diff(desired, 0.25)
    assert cancels == [b1]
    assert places == [Quote(-1, 0, 5002, 200), Quote(1, 1, 4995, 200)]
    assert b0 not in cancels and a0 not in cancels


def test_diff_side_matters() -> None:
    om, (b,) = om_with(Quote(1, 0, 5000, 100))
    cancels, places = om.diff([Quote(-1, 0, 5000, 100)], 0.25)
    assert cancels == [b]
    assert places == [Quote(-1, 0, 5000, 100)]


def test_diff_cancels_duplicates_at_one_price() -> None:
    om, (_, y) = om_with(Quote(1, 0, 4997, 200), Quote(1, 0, 4997, 200))
    cancels, places = om.diff([Quote(1, 0, 4997, 200)], 0.25)
    assert cancels == [y]  # the first one keeps the queue place
    assert places == []


def test_diff_with_nothing_desired_cancels_all() -> None:
    om, orders = om_with(Quote(1, 0, 4997, 200), Quote(-1, 0, 5003, 200))
    cancels, places = om.diff([], 0.25)
    assert cancels == orders
    assert places == []


def test_diff_ignores_pending_cancel_orders() -> None:
    om, (b, _) = om_with(Quote(1, 0, 4997, 200), Quote(-1, 0, 5003, 200))
    om.mark_cancel(b)
    cancels, places = om.diff([Quote(1, 0, 4997, 200), Quote(-1, 0, 5003, 200)], 0.25)
    assert cancels == []  # b is not cancelled twice …
    assert places == [Quote(1, 0, 4997, 200)]  # … and does not count as the live bid


# --- lifecycle -----------------------------------------------------------------------------
def test_accept_partial_full_fill() -> None:
    om, (b,) = om_with(Quote(1, 0, 4997, 200))
    om.on_accepted(b.client_id, 77)
    assert b.state is OrderState.OPEN
    assert b.venue_id == 77
    assert om.on_fill(fill("f1", b, 50)) is True
    assert b.state is OrderState.PARTIALLY_FILLED
    assert (b.filled_lots, b.remaining) == (50, 150)
    assert om.position.lots == 50
    assert b.client_id in om.live
    assert om.on_fill(fill("f2", b, 150)) is True
    assert b.state is OrderState.FILLED
    assert b.client_id not in om.live
    assert om.position.lots == 200
    assert om.position.fill_count == 2


def test_fill_before_ack_then_late_ack_keeps_fill_state() -> None:
    om, (a,) = om_with(Quote(-1, 0, 5003, 100))
    om.on_fill(fill("f1", a, 40))
    assert a.state is OrderState.PARTIALLY_FILLED
    om.on_accepted(a.client_id, 9)
    assert a.state is OrderState.PARTIALLY_FILLED
    assert a.venue_id == 9
    assert om.position.lots == -40


def test_partial_fill_while_cancelling_stays_pending_cancel() -> None:
    om, (b,) = om_with(Quote(1, 0, 4997, 200))
    om.on_accepted(b.client_id, 1)
    om.mark_cancel(b)
    om.on_fill(fill("f1", b, 30))
    assert b.state is OrderState.PENDING_CANCEL
    om.on_cancelled(b.client_id)
    assert b.state is OrderState.CANCELLED
    assert om.live == {}
    assert om.position.lots == 30


def test_duplicate_fill_id_is_ignored() -> None:
    om, (b,) = om_with(Quote(1, 0, 4997, 200))
    f = fill("sim-1", b, 50)
    assert om.on_fill(f) is True
    pos = (om.position.lots, om.position.fees, om.position.fill_count)
    assert om.on_fill(f) is False
    assert om.on_fill(fill("sim-1", b, 50)) is False  # same id, fresh object
    assert (om.position.lots, om.position.fees, om.position.fill_count) == pos
    assert b.filled_lots == 50


def test_duplicate_fill_after_order_is_gone_is_still_ignored() -> None:
    om, (b,) = om_with(Quote(1, 0, 4997, 100))
    f = fill("f1", b, 100)
    om.on_fill(f)
    assert om.live == {}
    assert om.on_fill(f) is False
    assert om.position.lots == 100


def test_fill_for_unknown_order_still_moves_position() -> None:
    om = OrderManager(SEI_USDC)
    ghost = Order("venue-only", Side.SELL, 5000, 10)
    assert om.on_fill(fill("g1", ghost, 10)) is True
    assert om.position.lots == -10


def test_fill_pnl_and_fees() -> None:
    om, (b, a) = om_with(Quote(1, 0, 4997, 100), Quote(-1, 0, 5003, 100))
    om.on_fill(fill("f1", b, 100))
    om.on_fill(fill("f2", a, 100))
    pos = om.position
    assert pos.lots == 0
    assert pos.realized == pytest.approx(6 * 100 * 0.0001)  # 6 ticks × 100 lots
    # maker rebate −0.5 bps on (4997 + 5003) × 100 × 0.0001 = 100 USDC
    assert pos.fees == pytest.approx(-0.005)


def test_rejected_is_removed_and_counted() -> None:
    om, (b, a) = om_with(Quote(1, 0, 4997, 200), Quote(-1, 0, 5003, 200))
    om.on_rejected(b.client_id, "post-only order would cross")
    assert b.state is OrderState.REJECTED
    assert b.reject_reason == "post-only order would cross"
    assert b.client_id not in om.live
    assert om.rejects == 1
    om.on_rejected("unknown", "x")  # unknown id: nothing to count
    om.on_rejected(b.client_id, "again")
    assert om.rejects == 1
    assert list(om.live) == [a.client_id]


def test_events_for_unknown_ids_are_ignored() -> None:
    om, (b,) = om_with(Quote(1, 0, 4997, 200))
    om.on_accepted("nope", 1)
    om.on_cancelled("nope")
    assert list(om.live) == [b.client_id]
    assert b.state is OrderState.PENDING_NEW


# --- cancels -------------------------------------------------------------------------------
def test_mark_cancel_returns_cancel_with_venue_id() -> None:
    om, (b,) = om_with(Quote(1, 0, 4997, 200))
    assert om.mark_cancel(b) == CancelOrder(b.client_id, None)
    om2, (c,) = om_with(Quote(1, 0, 4997, 200))
    om2.on_accepted(c.client_id, 42)
    assert om2.mark_cancel(c) == CancelOrder(c.client_id, 42)
    assert c.state is OrderState.PENDING_CANCEL


def test_cancel_all_marks_pending_cancel_once() -> None:
    om, orders = om_with(Quote(1, 0, 4997, 200), Quote(-1, 0, 5003, 200), Quote(1, 1, 4996, 1))
    om.on_accepted(orders[0].client_id, 5)
    om.mark_cancel(orders[2])  # already being cancelled
    batch = om.cancel_all()
    assert batch.places == []
    assert batch.cancels == [
        CancelOrder(orders[0].client_id, 5),
        CancelOrder(orders[1].client_id, None),
    ]
    assert all(o.state is OrderState.PENDING_CANCEL for o in orders)
    assert len(om.live) == 3  # still live until the venue confirms
    assert not om.cancel_all()  # nothing left to cancel: empty (falsy) batch


# --- exposure ------------------------------------------------------------------------------
def test_exposure_sums_remaining_lots_and_notional() -> None:
    om = OrderManager(SEI_USDC)
    assert om.exposure() == Exposure(0, 0, 0, 0.0)
    b0 = om.new_order(Quote(1, 0, 5000, 200), NOW)
    om.new_order(Quote(1, 1, 4000, 100), NOW)
    a0 = om.new_order(Quote(-1, 0, 6000, 300), NOW)
    om.on_fill(fill("f1", b0, 50))  # long 50, 150 left on the bid
    om.mark_cancel(a0)  # a cancel in flight still counts (it may fill)
    exp = om.exposure()
    assert exp.position_lots == 50
    assert exp.live_buy_lots == 250
    assert exp.live_sell_lots == 300
    # (5000·150 + 4000·100 + 6000·300) × 0.0001 = 75 + 40 + 180
    assert exp.open_notional == pytest.approx(295.0)


# --- reconcile -----------------------------------------------------------------------------
def test_reconcile_adopts_orphans_and_drops_missing() -> None:
    om, (pending, opened, partial, cancelling) = om_with(
        Quote(1, 0, 4997, 100),
        Quote(-1, 0, 5003, 100),
        Quote(1, 1, 4996, 100),
        Quote(-1, 1, 5004, 100),
    )
    for i, o in enumerate((opened, partial, cancelling), start=1):
        om.on_accepted(o.client_id, i)
    om.on_fill(fill("f1", partial, 10))
    om.mark_cancel(cancelling)
    venue = [
        OpenOrder(partial.client_id, 202, Side.BUY, 4996, 90),
        OpenOrder("old-7", 900, Side.SELL, 5010, 33),
    ]
    orphans, dropped = om.reconcile(venue)
    assert orphans == ["old-7"]
    assert sorted(dropped) == sorted([opened.client_id, cancelling.client_id])
    assert opened.state is OrderState.CANCELLED
    assert cancelling.state is OrderState.CANCELLED
    # in flight: left alone
    assert om.live[pending.client_id] is pending
    assert pending.state is OrderState.PENDING_NEW
    # known and at the venue: kept, venue id refreshed
    assert om.live[partial.client_id] is partial
    assert partial.venue_id == 202
    assert partial.state is OrderState.PARTIALLY_FILLED
    adopted = om.live["old-7"]
    assert (adopted.side, adopted.price, adopted.lots) == (Side.SELL, 5010, 33)
    assert (adopted.state, adopted.venue_id, adopted.level) == (OrderState.OPEN, 900, -1)
    assert set(om.live) == {pending.client_id, partial.client_id, "old-7"}


def test_reconciled_orphan_is_cancelled_by_next_diff() -> None:
    om = OrderManager(SEI_USDC)
    om.reconcile([OpenOrder("old-1", 5, Side.BUY, 4990, 10)])
    cancels, places = om.diff([Quote(1, 0, 4997, 200)], 0.25)
    assert [o.client_id for o in cancels] == ["old-1"]
    assert places == [Quote(1, 0, 4997, 200)]
    assert om.exposure().live_buy_lots == 10  # counted in exposure until it is gone


def test_reconcile_with_empty_venue_keeps_only_pending_new() -> None:
    om, (b, a) = om_with(Quote(1, 0, 4997, 200), Quote(-1, 0, 5003, 200))
    om.on_accepted(a.client_id, 3)
    orphans, dropped = om.reconcile([])
    assert orphans == []
    assert dropped == [a.client_id]
    assert list(om.live) == [b.client_id]


# --- the others' touch -----------------------------------------------------------------------
def _book(bids: dict[int, int], asks: dict[int, int]) -> L2Book:
    b = L2Book()
    for price, lots in bids.items():
        b.set_level(1, price, lots)
    for price, lots in asks.items():
        b.set_level(-1, price, lots)
    return b


def test_others_touch_is_the_book_touch_when_none_of_ours_is_at_it() -> None:
    om, orders = om_with(Quote(1, 0, 4990, 100), Quote(-1, 0, 5010, 100))
    for o in orders:
        om.on_accepted(o.client_id, 1)
    book = _book({4995: 300, 4990: 100}, {5005: 200, 5010: 100})
    assert om.others_touch(book) == (4995, 5005)


def test_others_touch_skips_levels_that_are_only_ours_at_every_depth() -> None:
    # ours alone at the touch (4995) and alone one level deeper (4994): the others' bid
    # is the level behind both; on the ask our order is only part of the level
    om, orders = om_with(Quote(1, 0, 4995, 100), Quote(1, 1, 4994, 50), Quote(-1, 0, 5005, 100))
    for o in orders:
        om.on_accepted(o.client_id, 1)
    book = _book({4995: 100, 4994: 50, 4993: 70}, {5005: 250, 5006: 10})
    assert om.others_touch(book) == (4993, 5005)


def test_others_touch_counts_orders_still_in_flight_as_not_resting() -> None:
    om, _ = om_with(Quote(1, 0, 4995, 100))  # PENDING_NEW: not in the book yet
    book = _book({4995: 100}, {5005: 10})
    assert om.others_touch(book) == (4995, 5005)
