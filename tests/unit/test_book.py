"""Unit tests for the incremental L2 book (best tracking, depth, mid/spread, snapshot)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flashmm.book.l2 import ASK, BID, L2Book


def _book(bids: dict[int, int] | None = None, asks: dict[int, int] | None = None) -> L2Book:
    b = L2Book()
    for p, q in (bids or {}).items():
        b.set_level(BID, p, q)
    for p, q in (asks or {}).items():
        b.set_level(ASK, p, q)
    return b


# --- empty book -------------------------------------------------------------------------


def test_empty_book_has_no_best_no_mid_no_spread() -> None:
    b = L2Book()
    assert b.best_bid == 0
    assert b.best_ask == 0
    assert b.mid == 0.0
    assert b.spread == 0
    assert not b.crossed()
    assert b.depth(BID, 5) == []
    assert b.depth(ASK, 5) == []
    assert b.snapshot() == ([], [])
    assert b.lots_at(BID, 100) == 0


# --- best tracking on add -----------------------------------------------------------------


def test_best_bid_tracks_highest_price_in_any_insertion_order() -> None:
    b = L2Book()
    b.set_level(BID, 100, 5)
    assert b.best_bid == 100
    b.set_level(BID, 98, 3)  # worse: best unchanged
    assert b.best_bid == 100
    b.set_level(BID, 103, 1)  # better
    assert b.best_bid == 103
    b.set_level(BID, 101, 7)
    assert b.best_bid == 103
    assert b.best_ask == 0  # the ask side is untouched


def test_best_ask_tracks_lowest_price_in_any_insertion_order() -> None:
    b = L2Book()
    b.set_level(ASK, 105, 5)
    assert b.best_ask == 105
    b.set_level(ASK, 110, 2)
    assert b.best_ask == 105
    b.set_level(ASK, 102, 4)
    assert b.best_ask == 102
    b.set_level(ASK, 104, 1)
    assert b.best_ask == 102
    assert b.best_bid == 0


def test_set_level_overwrites_size_absolutely() -> None:
    b = _book(bids={100: 5})
    b.set_level(BID, 100, 9)
    assert b.lots_at(BID, 100) == 9
    b.set_level(BID, 100, 2)
    assert b.lots_at(BID, 100) == 2
    assert b.best_bid == 100


# --- best tracking on remove ----------------------------------------------------------------


def test_removing_best_bid_finds_next_level_below() -> None:
    b = _book(bids={100: 5, 99: 1, 97: 2})
    b.set_level(BID, 100, 0)
    assert b.best_bid == 99
    assert 100 not in b.bids
    b.set_level(BID, 99, 0)
    assert b.best_bid == 97  # skips the empty tick 98
    b.set_level(BID, 97, 0)
    assert b.best_bid == 0
    assert b.bids == {}


def test_removing_best_ask_finds_next_level_above() -> None:
    b = _book(asks={101: 5, 102: 1, 104: 2})
    b.set_level(ASK, 101, 0)
    assert b.best_ask == 102
    b.set_level(ASK, 102, 0)
    assert b.best_ask == 104
    b.set_level(ASK, 104, 0)
    assert b.best_ask == 0
    assert b.asks == {}


def test_removing_non_best_level_keeps_best() -> None:
    b = _book(bids={100: 5, 95: 1}, asks={101: 5, 110: 3})
    b.set_level(BID, 95, 0)
    b.set_level(ASK, 110, 0)
    assert (b.best_bid, b.best_ask) == (100, 101)
    assert b.bids == {100: 5}
    assert b.asks == {101: 5}


def test_removing_absent_level_is_a_noop() -> None:
    b = _book(bids={100: 5}, asks={101: 5})
    b.set_level(BID, 50, 0)
    b.set_level(ASK, 500, 0)
    b.set_level(BID, 101, 0)  # a price that exists only on the other side
    assert b.snapshot() == ([(100, 5)], [(101, 5)])
    assert (b.best_bid, b.best_ask) == (100, 101)


@pytest.mark.parametrize("gap", [63, 64, 65, 200, 5_000])
def test_removing_best_bid_across_a_large_gap(gap: int) -> None:
    # next level far below the best: the tick-by-tick scan gives up and falls back to a scan
    far = 10_000 - gap
    b = _book(bids={10_000: 1, far: 4, far - 1: 2})
    b.set_level(BID, 10_000, 0)
    assert b.best_bid == far
    b.set_level(BID, far, 0)
    assert b.best_bid == far - 1


@pytest.mark.parametrize("gap", [63, 64, 65, 200, 5_000])
def test_removing_best_ask_across_a_large_gap(gap: int) -> None:
    far = 100 + gap
    b = _book(asks={100: 1, far: 4, far + 1: 2})
    b.set_level(ASK, 100, 0)
    assert b.best_ask == far
    b.set_level(ASK, far, 0)
    assert b.best_ask == far + 1


def test_fallback_scan_picks_best_not_any_level() -> None:
    # several levels far away: the fallback must return the nearest (max bid / min ask)
    b = _book(bids={1_000: 1, 500: 1, 700: 1, 300: 1}, asks={2_000: 1, 2_900: 1, 2_500: 1})
    b.set_level(BID, 1_000, 0)
    b.set_level(ASK, 2_000, 0)
    assert b.best_bid == 700
    assert b.best_ask == 2_500


# --- add() ----------------------------------------------------------------------------


def test_add_accumulates_and_returns_new_size() -> None:
    b = L2Book()
    assert b.add(BID, 100, 5) == 5
    assert b.add(BID, 100, 3) == 8
    assert b.add(BID, 100, -2) == 6
    assert b.lots_at(BID, 100) == 6
    assert b.add(ASK, 101, 4) == 4
    assert (b.best_bid, b.best_ask) == (100, 101)


def test_add_to_zero_removes_level_and_moves_best() -> None:
    b = _book(bids={100: 5, 99: 2})
    assert b.add(BID, 100, -5) == 0
    assert 100 not in b.bids
    assert b.best_bid == 99


def test_add_refuses_to_go_negative_and_changes_nothing() -> None:
    b = _book(bids={100: 5}, asks={101: 2})
    with pytest.raises(ValueError, match="negative"):
        b.add(BID, 100, -6)
    with pytest.raises(ValueError, match="negative"):
        b.add(ASK, 105, -1)  # absent level counts as 0
    assert b.snapshot() == ([(100, 5)], [(101, 2)])
    assert (b.best_bid, b.best_ask) == (100, 101)


# --- depth ---------------------------------------------------------------------------


def test_depth_is_best_first_and_truncated() -> None:
    b = _book(bids={100: 1, 98: 2, 97: 3, 95: 4}, asks={101: 5, 103: 6, 104: 7})
    assert b.depth(BID, 2) == [(100, 1), (98, 2)]
    assert b.depth(BID, 4) == [(100, 1), (98, 2), (97, 3), (95, 4)]
    assert b.depth(BID, 10) == [(100, 1), (98, 2), (97, 3), (95, 4)]
    assert b.depth(ASK, 1) == [(101, 5)]
    assert b.depth(ASK, 3) == [(101, 5), (103, 6), (104, 7)]
    assert b.depth(ASK, 0) == []


def test_depth_across_gaps_wider_than_scan_limit() -> None:
    b = _book(bids={1_000: 1, 900: 2, 100: 3}, asks={2_000: 4, 2_001: 5, 3_000: 6})
    assert b.depth(BID, 3) == [(1_000, 1), (900, 2), (100, 3)]
    assert b.depth(BID, 2) == [(1_000, 1), (900, 2)]
    assert b.depth(ASK, 3) == [(2_000, 4), (2_001, 5), (3_000, 6)]
    assert b.depth(ASK, 10) == [(2_000, 4), (2_001, 5), (3_000, 6)]


def test_depth_reflects_removed_levels() -> None:
    b = _book(asks={101: 5, 102: 6, 103: 7})
    b.set_level(ASK, 102, 0)
    assert b.depth(ASK, 3) == [(101, 5), (103, 7)]


# --- mid / spread / crossed -------------------------------------------------------------


def test_mid_and_spread_two_sided() -> None:
    b = _book(bids={100: 1}, asks={103: 1})
    assert b.mid == 101.5
    assert b.spread == 3
    assert not b.crossed()


@pytest.mark.parametrize(
    ("bids", "asks"),
    [({100: 1}, {}), ({}, {103: 1})],
    ids=["bids-only", "asks-only"],
)
def test_mid_and_spread_zero_when_one_sided(bids: dict[int, int], asks: dict[int, int]) -> None:
    b = _book(bids=bids, asks=asks)
    assert b.mid == 0.0
    assert b.spread == 0
    assert not b.crossed()


def test_crossed_detects_locked_and_crossed_books() -> None:
    assert _book(bids={100: 1}, asks={100: 1}).crossed()
    assert _book(bids={101: 1}, asks={100: 1}).crossed()
    assert not _book(bids={99: 1}, asks={100: 1}).crossed()


# --- snapshot / clear -------------------------------------------------------------------


def test_snapshot_orders_both_sides_best_first() -> None:
    b = L2Book()
    for p, q in [(97, 3), (100, 1), (95, 4), (98, 2)]:
        b.set_level(BID, p, q)
    for p, q in [(104, 7), (101, 5), (110, 8), (103, 6)]:
        b.set_level(ASK, p, q)
    bids, asks = b.snapshot()
    assert bids == [(100, 1), (98, 2), (97, 3), (95, 4)]
    assert asks == [(101, 5), (103, 6), (104, 7), (110, 8)]


def test_clear_empties_everything_and_book_is_reusable() -> None:
    b = _book(bids={100: 1, 99: 2}, asks={101: 3})
    b.clear()
    assert b.snapshot() == ([], [])
    assert (b.best_bid, b.best_ask) == (0, 0)
    assert b.mid == 0.0
    # a level below the old best must become the best after clear (no stale best)
    b.set_level(BID, 50, 1)
    b.set_level(ASK, 60, 1)
    assert (b.best_bid, b.best_ask) == (50, 60)
    assert b.depth(BID, 5) == [(50, 1)]


# --- model-based check against a plain dict ----------------------------------------------

_ops = st.lists(
    st.tuples(
        st.sampled_from([BID, ASK]),
        st.one_of(st.integers(1, 40), st.integers(1, 400)),
        st.integers(0, 3),  # 0 removes
    ),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(_ops, st.integers(1, 6))
def test_best_and_depth_match_reference_model(ops: list[tuple[int, int, int]], n: int) -> None:
    b = L2Book()
    ref: dict[int, dict[int, int]] = {BID: {}, ASK: {}}
    for side, price, lots in ops:
        b.set_level(side, price, lots)
        if lots:
            ref[side][price] = lots
        else:
            ref[side].pop(price, None)
        assert b.best_bid == max(ref[BID], default=0)
        assert b.best_ask == min(ref[ASK], default=0)
    assert b.bids == ref[BID]
    assert b.asks == ref[ASK]
    assert b.depth(BID, n) == sorted(ref[BID].items(), reverse=True)[:n]
    assert b.depth(ASK, n) == sorted(ref[ASK].items())[:n]
