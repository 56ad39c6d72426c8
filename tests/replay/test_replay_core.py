"""The compiled replay core on hand-made books: when our orders fill, by which rule, and when
we hear about it. Every case here is a rule in docs/replay.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flashmm.marketdata.store import (
    CLEAR,
    DEPTH,
    SNAPSHOT,
    TRADE,
    EventStore,
    Manifest,
    StoreInstrument,
    make_events,
    write_store,
)
from flashmm.replay import native as nv
from flashmm.replay.core import ReplayCore
from flashmm.replay.feed import prepare

MS = 1_000_000
BID, ASK = 1, -1


def make_store(tmp_path: Path, rows: list[tuple[int, int, int, int, int]]) -> EventStore:
    """rows: (exchange ms, kind, side, price ticks, lots); local time = exchange time + 1 ms."""
    cols: dict[str, list[int]] = {k: [] for k in ("exch_ts", "local_ts", "kind", "side")}
    cols["price"], cols["qty"] = [], []
    for ms, kind, side, price, qty in rows:
        cols["exch_ts"].append(ms * MS)
        cols["local_ts"].append(ms * MS + MS)
        cols["kind"].append(kind)
        cols["side"].append(side)
        cols["price"].append(price)
        cols["qty"].append(qty)
    m = Manifest("test", StoreInstrument("TEST", "1", "1"), [])
    return EventStore.open(write_store(tmp_path / "s", make_events(cols), m))


BOOK = [
    (0, CLEAR, 0, 0, 0),
    (0, SNAPSHOT, BID, 99, 10),
    (0, SNAPSHOT, BID, 98, 10),
    (0, SNAPSHOT, ASK, 101, 10),
    (0, SNAPSHOT, ASK, 102, 10),
]


def core_for(
    tmp_path: Path,
    rows: list[tuple[int, int, int, int, int]],
    latency_ms: int = 1,
    queue: str = "risk-averse",
) -> ReplayCore:
    store = make_store(tmp_path, BOOK + rows)
    return ReplayCore(prepare(store, None), latency_ms * MS, latency_ms * MS, queue)


def responses(core: ReplayCore, until_ms: int) -> list[tuple[int, int, int]]:
    core.advance(until_ms * MS)
    return [(ts // MS, kind, h) for ts, kind, h, _, _ in core.take_responses(until_ms * MS)]


def test_fill_when_trades_use_up_the_queue_ahead(tmp_path: Path) -> None:
    core = core_for(
        tmp_path,
        [
            (10, TRADE, ASK, 99, 4),  # a seller takes 4 of the 10 ahead of us
            (10, DEPTH, BID, 99, 6),
            (20, TRADE, ASK, 99, 6),  # the rest of the queue ahead
            (20, DEPTH, BID, 99, 0),
            (20, DEPTH, BID, 99, 3),  # someone joins behind
            (30, TRADE, ASK, 99, 1),  # this one reaches us
        ],
    )
    core.advance(2 * MS)
    core.place(7, BID, 99, 5, 2 * MS)  # reaches the exchange at 3 ms: 10 lots ahead of us
    assert responses(core, 25) == [(4, nv.ACK, 7)]
    assert core.fills_by_queue == 0
    assert responses(core, 40) == [(31, nv.FILL, 7)]  # filled at 30, heard 1 ms later
    assert core.fills_by_queue == 1 and core.fills_by_cross == 0


def test_trade_through_our_price_fills_at_once(tmp_path: Path) -> None:
    core = core_for(tmp_path, [(10, TRADE, ASK, 98, 2)])
    core.advance(2 * MS)
    core.place(1, BID, 99, 5, 2 * MS)
    out = responses(core, 20)
    assert out == [(4, nv.ACK, 1), (11, nv.FILL, 1)]
    assert core.fills_by_cross == 1


def test_the_opposite_best_moving_through_us_fills(tmp_path: Path) -> None:
    core = core_for(tmp_path, [(10, DEPTH, ASK, 100, 3)])
    core.advance(2 * MS)
    core.place(1, BID, 100, 5, 2 * MS)  # improves the bid: nobody ahead
    assert responses(core, 20) == [(4, nv.ACK, 1), (11, nv.FILL, 1)]


def test_orders_in_flight_do_not_fill_before_they_arrive(tmp_path: Path) -> None:
    core = core_for(tmp_path, [(10, TRADE, ASK, 98, 2), (30, TRADE, ASK, 98, 2)], latency_ms=15)
    core.advance(2 * MS)
    core.place(1, BID, 99, 5, 2 * MS)  # arrives at 17 ms: the 10 ms print is before it
    out = responses(core, 100)
    assert out == [(32, nv.ACK, 1), (45, nv.FILL, 1)]


def test_post_only_order_that_would_cross_is_rejected(tmp_path: Path) -> None:
    core = core_for(tmp_path, [])
    core.advance(2 * MS)
    core.place(1, BID, 101, 5, 2 * MS)
    assert responses(core, 10) == [(4, nv.REJECT, 1)]


def test_cancel_before_a_fill_and_same_instant_tie(tmp_path: Path) -> None:
    core = core_for(tmp_path, [(10, TRADE, ASK, 98, 2)])
    core.advance(2 * MS)
    core.place(1, BID, 99, 5, 2 * MS)
    core.place(2, ASK, 102, 5, 2 * MS)
    core.advance(9 * MS)
    core.cancel(2, 9 * MS)  # resting: cancelled
    core.cancel(1, 9 * MS)  # arrives at 10 ms, the same instant as the print through it
    out = responses(core, 20)
    by_order = {(h, k) for _, k, h in out}
    assert (2, nv.CANCELLED) in by_order
    # at the same instant our requests go before the market's event: cancelled, not filled
    assert (1, nv.CANCELLED) in by_order and (1, nv.FILL) not in by_order


def test_cancel_after_fill_is_answered_not_open(tmp_path: Path) -> None:
    core = core_for(tmp_path, [(10, TRADE, ASK, 98, 2)])
    core.advance(2 * MS)
    core.place(1, BID, 99, 5, 2 * MS)
    core.advance(10 * MS)
    core.cancel(1, 10 * MS)  # the fill happened at 10 ms; the cancel arrives at 11 ms
    out = responses(core, 20)
    assert [(t, k) for t, k, _ in out] == [(4, nv.ACK), (11, nv.FILL), (12, nv.CANCEL_REJECT)]


def test_probabilistic_queue_moves_us_up_on_cancels_risk_averse_does_not(
    tmp_path: Path,
) -> None:
    rows = [
        (10, DEPTH, BID, 99, 20),  # 10 more join behind us
        (20, DEPTH, BID, 99, 16),  # 4 leave: from ahead or behind?
        (30, TRADE, ASK, 99, 9),
        (30, DEPTH, BID, 99, 7),
    ]
    fills = {}
    for q in ("risk-averse", "prob"):
        core = core_for(tmp_path / q, rows, queue=q)
        core.advance(2 * MS)
        core.place(1, BID, 99, 5, 2 * MS)
        fills[q] = [k for _, k, _ in responses(core, 50)].count(nv.FILL)
    # risk-averse: 10 still ahead after the cancels, a 9-lot print leaves 1 ahead → no fill;
    # prob (x³): half the 4 cancelled came from ahead → 8 ahead, the print reaches us
    assert fills == {"risk-averse": 0, "prob": 1}


def test_local_book_lags_by_the_feed_latency(tmp_path: Path) -> None:
    store = make_store(tmp_path, [*BOOK, (10, DEPTH, BID, 100, 4)])
    core = ReplayCore(prepare(store, 5 * MS), MS, MS)  # constant 5 ms feed latency
    core.advance(14 * MS)
    assert core.best() == (99, 101)
    core.advance(15 * MS)
    assert core.best() == (100, 101)
    assert core.depth(BID, 3) == [(100, 4), (99, 10), (98, 10)]


def test_recorded_feed_latency_is_corrected_like_hftbacktest(tmp_path: Path) -> None:
    store = make_store(tmp_path, BOOK)
    ev = np.array(store.events)
    ev["local_ts"] -= 1500 * MS  # the recorder's clock 1.5 s behind the exchange
    m = Manifest("test", StoreInstrument("TEST", "1", "1"), [])
    shifted = EventStore.open(write_store(tmp_path / "behind", ev, m))
    arrays = prepare(shifted, None)
    assert arrays.feed_shift_ns == 1499 * MS
    assert int((arrays.local - arrays.exch).min()) == 0


def test_reactive_stop_when_the_book_moves_through_our_quote(tmp_path: Path) -> None:
    later = (100, DEPTH, BID, 98, 11)
    core = core_for(tmp_path, [(10, DEPTH, ASK, 101, 0), (10, DEPTH, ASK, 100, 2), later])
    core.advance(2 * MS)
    core.set_quoted(0, 100, 2 * MS, 0)  # our ask at 100: the book's mid reaching it stops us
    assert core.advance(50 * MS) == nv.STOP_TIME  # mid 99.5 < 100: no stop
    store = make_store(tmp_path / "b", [*BOOK, (10, DEPTH, BID, 99, 0), (10, DEPTH, ASK, 100, 2)])
    core = ReplayCore(prepare(store, None), MS, MS)
    core.advance(2 * MS)
    core.set_quoted(99, 0, 2 * MS, 0)
    assert core.advance(50 * MS) == nv.STOP_REACT
    assert core.now_ns == 11 * MS  # after the whole update, never half of it


def test_bad_options_are_refused(tmp_path: Path) -> None:
    store = make_store(tmp_path, BOOK)
    with pytest.raises(ValueError, match="queue model"):
        ReplayCore(prepare(store, None), 0, 0, "fifo")
    with pytest.raises(ValueError, match="latencies"):
        ReplayCore(prepare(store, None), -1, 0)
    with pytest.raises(ValueError, match="feed latency"):
        prepare(store, -5)


def test_a_diff_recorded_before_its_snapshot_is_applied_after_it(tmp_path: Path) -> None:
    """Binance buffers diffs while the REST snapshot is fetched: such a diff's local stamp is
    earlier than the snapshot's, but the local book must still apply it after the snapshot
    (a snapshot applied later would wipe it, leaving a wrong level for good)."""
    store = make_store(tmp_path, [*BOOK, (0, DEPTH, BID, 100, 7)])
    ev = np.array(store.events)
    ev["local_ts"][:5] += 50 * MS  # the snapshot line arrived 50 ms after the diff
    m = Manifest("test", StoreInstrument("TEST", "1", "1"), [])
    s = EventStore.open(write_store(tmp_path / "late-snapshot", ev, m))
    core = ReplayCore(prepare(s, None), MS, MS)
    core.advance(100 * MS)
    assert core.best() == (100, 101)
    assert core.depth(BID, 2) == [(100, 7), (99, 10)]
