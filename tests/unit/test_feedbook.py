"""FeedBook: sequenced deltas, stale drops, gap detection and snapshot resync with replay."""

from __future__ import annotations

from flashmm.book.l2 import ASK, BID, L2Book
from flashmm.venue.base import BookDelta, BookSnapshot
from hotpath.book import FeedBook


def _snap(seq: int, bids: dict[int, int], asks: dict[int, int]) -> BookSnapshot:
    return BookSnapshot(
        seq,
        tuple(sorted(bids.items(), reverse=True)),
        tuple(sorted(asks.items())),
        0,
    )


def _delta(seq: int, *levels: tuple[int, int, int]) -> BookDelta:
    return BookDelta(seq, tuple(levels), 0)


BASE_BIDS = {100: 5, 99: 7, 98: 9}
BASE_ASKS = {101: 4, 102: 6, 103: 8}

# A stream of deltas 1..8 starting from the base book at seq 0.
STREAM = [
    _delta(1, (BID, 100, 3)),
    _delta(2, (ASK, 101, 0)),  # best ask level removed → best ask 102
    _delta(3, (BID, 101, 2), (ASK, 104, 1)),  # new best bid
    _delta(4, (BID, 98, 0)),
    _delta(5, (ASK, 102, 10), (BID, 97, 4)),
    _delta(6, (BID, 101, 0)),  # best bid removed → back to 100
    _delta(7, (ASK, 101, 2)),  # new best ask
    _delta(8, (BID, 100, 0), (ASK, 105, 3)),
]


def _reference(deltas: list[BookDelta], bids=BASE_BIDS, asks=BASE_ASKS) -> L2Book:
    """Apply deltas directly to a plain L2Book (the expected result)."""
    b = L2Book()
    for p, q in bids.items():
        b.set_level(BID, p, q)
    for p, q in asks.items():
        b.set_level(ASK, p, q)
    for d in deltas:
        for side, price, lots in d.levels:
            b.set_level(side, price, lots)
        b.seq = d.seq
    return b


def _state(b: L2Book) -> tuple[object, ...]:
    return (b.seq, b.best_bid, b.best_ask, b.snapshot())


def _ready_feed() -> FeedBook:
    f = FeedBook()
    f.apply_snapshot(_snap(0, BASE_BIDS, BASE_ASKS))
    return f


def test_not_ready_before_first_snapshot() -> None:
    f = FeedBook()
    assert f.ready is False
    assert f.apply_delta(STREAM[0]) is False
    assert f.ready is False
    # nothing was applied to the book
    assert f.book.best_bid == 0
    assert f.book.best_ask == 0
    assert f.book.seq == 0


def test_snapshot_makes_ready_and_loads_levels() -> None:
    f = _ready_feed()
    assert f.ready is True
    assert f.resyncs == 1
    assert f.book.best_bid == 100
    assert f.book.best_ask == 101
    assert _state(f.book) == _state(_reference([]))


def test_in_order_deltas_apply() -> None:
    f = _ready_feed()
    for d in STREAM:
        assert f.apply_delta(d) is True
        assert f.book.seq == d.seq
    assert f.ready is True
    assert f.gaps == 0
    assert _state(f.book) == _state(_reference(STREAM))
    # spot checks that the levels really moved
    assert f.book.best_bid == 99
    assert f.book.best_ask == 101
    assert f.book.lots_at(ASK, 102) == 10


def test_stale_delta_is_ignored() -> None:
    f = _ready_feed()
    for d in STREAM[:3]:
        f.apply_delta(d)
    before = _state(f.book)
    # an old sequence number carrying a change that would otherwise be visible
    old = _delta(2, (BID, 100, 999), (ASK, 101, 999))
    assert f.apply_delta(old) is True
    assert f.stale_dropped == 1
    assert f.ready is True
    assert f.gaps == 0
    assert _state(f.book) == before
    # a duplicate of the current sequence is stale too
    assert f.apply_delta(_delta(3, (BID, 50, 1))) is True
    assert f.stale_dropped == 2
    assert f.book.lots_at(BID, 50) == 0
    # and the stream continues normally afterwards
    assert f.apply_delta(STREAM[3]) is True
    assert f.book.seq == 4


def test_gap_returns_false_and_marks_not_ready() -> None:
    f = _ready_feed()
    f.apply_delta(STREAM[0])
    f.apply_delta(STREAM[1])
    before = _state(f.book)
    assert f.apply_delta(STREAM[3]) is False  # seq 4 after 2: gap
    assert f.ready is False
    assert f.gaps == 1
    # the out-of-order delta was not applied
    assert _state(f.book) == before
    # later deltas are not applied either while out of sync
    assert f.apply_delta(STREAM[4]) is False
    assert _state(f.book) == before
    assert f.gaps == 1  # buffering after a gap is not a new gap


def test_resync_replays_only_buffered_deltas_newer_than_snapshot() -> None:
    f = _ready_feed()
    f.apply_delta(STREAM[0])
    f.apply_delta(STREAM[1])
    # seq 3 is lost; 4..8 arrive and are buffered (out of order, to check sorting)
    assert f.apply_delta(STREAM[3]) is False
    for d in (STREAM[5], STREAM[4], STREAM[7], STREAM[6]):
        assert f.apply_delta(d) is False
    # the venue's snapshot is as of seq 5 (it includes deltas 1..5)
    s_bids, s_asks = _reference(STREAM[:5]).snapshot()
    f.apply_snapshot(BookSnapshot(5, tuple(s_bids), tuple(s_asks), 0))
    assert f.ready is True
    assert f.resyncs == 2
    # 4 and 5 (≤ snapshot) were skipped, 6..8 replayed: same as applying everything in order
    assert _state(f.book) == _state(_reference(STREAM))
    assert f.book.seq == 8
    # and the stream continues from 9
    assert f.apply_delta(_delta(9, (BID, 99, 1))) is True
    assert f.book.lots_at(BID, 99) == 1


def test_replay_does_not_reapply_old_buffered_delta_over_snapshot() -> None:
    """A buffered delta older than the snapshot must not overwrite the snapshot's level."""
    f = _ready_feed()
    assert f.apply_delta(_delta(2, (BID, 100, 1))) is False  # gap (expected 1)
    f.apply_snapshot(_snap(3, {100: 50}, {101: 4}))
    assert f.book.lots_at(BID, 100) == 50
    assert f.book.seq == 3


def test_resync_with_gap_in_buffer_stops_replay_and_stays_out_of_sync() -> None:
    f = _ready_feed()
    assert f.apply_delta(STREAM[2]) is False  # seq 3 while expecting 1
    f.apply_delta(STREAM[3])  # 4
    f.apply_delta(STREAM[6])  # 7 (5, 6 missing)
    s_bids, s_asks = _reference(STREAM[:2]).snapshot()
    f.apply_snapshot(BookSnapshot(2, tuple(s_bids), tuple(s_asks), 0))
    # 3 and 4 replay, 7 is a new gap → not ready again
    assert f.book.seq == 4
    assert f.ready is False
    assert f.gaps == 2
    assert _state(f.book) == _state(_reference(STREAM[:4]))


def test_snapshot_replaces_whole_book() -> None:
    f = _ready_feed()
    for d in STREAM:
        f.apply_delta(d)
    f.apply_snapshot(_snap(20, {50: 1}, {60: 2}))
    assert f.book.snapshot() == ([(50, 1)], [(60, 2)])
    assert f.book.best_bid == 50
    assert f.book.best_ask == 60
    assert f.book.seq == 20
    assert f.apply_delta(_delta(21, (ASK, 59, 3))) is True
    assert f.book.best_ask == 59


def test_feedbook_drives_given_book() -> None:
    book = L2Book()
    f = FeedBook(book)
    f.apply_snapshot(_snap(0, BASE_BIDS, BASE_ASKS))
    f.apply_delta(STREAM[0])
    assert f.book is book
    assert book.lots_at(BID, 100) == 3
