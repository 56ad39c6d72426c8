"""MarketMaker's operations, used from outside without reaching into its order manager or
risk engine: venue events through ``apply``, halt/resume/restore, and the status snapshot."""

from __future__ import annotations

from flashmm.domain.market_state import Activity, MarketState
from flashmm.domain.orders import Fill, Liquidity, Side
from flashmm.venue.base import OrderAccepted, OrderCancelled, OrderFilled
from tests.unit.test_engine_backtest import make_mm


def _quoted(now_ns: int = 1_000_000_000):  # type: ignore[no-untyped-def]
    mm = make_mm()
    mm.start()
    batch = mm.cycle(now_ns)
    assert batch.places
    return mm, batch


def test_venue_events_go_through_apply() -> None:
    mm, batch = _quoted()
    bid = next(p for p in batch.places if p.side is Side.BUY)
    got = mm.apply(OrderAccepted(bid.client_id, 7, 2), 2)
    assert got.order is not None and got.order.client_id == bid.client_id
    assert mm.open_order_count == len(batch.places)
    fill = Fill("f1", bid.client_id, Side.BUY, bid.price, bid.lots, 0.0, Liquidity.MAKER, 3)
    done = mm.apply(OrderFilled(fill, 0), 3)
    assert done.fill == fill and mm.position.lots == bid.lots
    assert mm.status()["fills"] == 1 and mm.status()["position_lots"] == bid.lots


def test_halt_cancels_everything_and_resume_quotes_again() -> None:
    mm, batch = _quoted()
    for p in batch.places:
        mm.apply(OrderAccepted(p.client_id, 1, 2), 2)
    cancels = mm.halt("drill", 3)
    assert {c.client_id for c in cancels.cancels} == {p.client_id for p in batch.places}
    assert mm.halted and mm.activity() is Activity.HALTED
    assert mm.status()["state"] == "halted" and mm.status()["halt_reason"] == "drill"
    assert not mm.cycle(4_000_000_000).places  # halted: nothing new is placed
    for p in batch.places:  # the venue confirms the cancels
        mm.apply(OrderCancelled(p.client_id, p.lots, 4), 4)
    assert mm.open_order_count == 0
    mm.resume()
    mm.on_data(4_900_000_000)  # market data still flowing (else the stale-data check denies)
    assert not mm.halted and mm.cycle(5_000_000_000).places


def test_a_persisted_halt_is_restored_before_quoting() -> None:
    mm = make_mm()
    mm.restore(MarketState.HALTED, "halted before the restart")
    assert mm.halted and not mm.cycle(1_000_000_000).places
    fresh = make_mm()
    fresh.restore(MarketState.TRADING, "")
    assert not fresh.halted and fresh.cycle(1_000_000_000).places
