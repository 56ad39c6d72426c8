"""Real-data datasets: the replayed features equal the live feature code's output on a plain
``L2Book`` updated row by row from the store (the live feed path), and the labels equal the
exchange-time mid's move computed independently, on the shared Binance recordings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from flashmm.book.l2 import L2Book
from flashmm.marketdata.store import BBO, CLEAR, DEPTH, SNAPSHOT, TRADE, EventStore
from flashmm.ml.dataset import DOWN, FLAT, UP
from flashmm.ml.features import FeatureEngine
from flashmm.ml.realdata import build


def _apply(book: L2Book, kind: int, side: int, price: int, qty: int) -> None:
    if kind in (DEPTH, SNAPSHOT):
        book.set_level(side, price, qty)
    elif kind == CLEAR:
        if side >= 0:
            book.bids.clear()
            book.best_bid = 0
        if side <= 0:
            book.asks.clear()
            book.best_ask = 0


def reference(
    store: EventStore, sample_ms: int, feed_latency_ns: int | None
) -> tuple[dict[int, list[float]], dict[int, float], dict[int, float]]:
    """Features, local mid and exchange mid per grid time, from Python books row by row."""
    ev = store.events
    ev = ev[ev["kind"] != BBO]
    exch = ev["exch_ts"].astype(np.int64)
    if feed_latency_ns is None:  # the recorded delay, shifted so the smallest is zero
        local = ev["local_ts"].astype(np.int64)
        local = local + max(0, -int((local - exch).min()))
    else:
        local = exch + feed_latency_ns
    # a live feed applies book updates in sequence: a diff buffered while the snapshot was
    # fetched goes after that snapshot (book rows' local stamps never go backwards)
    book = ev["kind"] != TRADE
    local[book] = np.maximum.accumulate(local[book])
    order = np.argsort(local, kind="stable").tolist()
    kinds = ev["kind"].tolist()
    sides = ev["side"].tolist()
    prices = ev["price"].tolist()
    qtys = ev["qty"].tolist()
    loc = local.tolist()
    ex = exch.tolist()
    step = sample_ms * 1_000_000
    t = -(-min(loc) // step) * step
    end = max(max(loc), max(ex))
    book, ex_book, fe = L2Book(), L2Book(), FeatureEngine()
    feats: dict[int, list[float]] = {}
    loc_mid: dict[int, float] = {}
    ex_mid: dict[int, float] = {}
    i = j = 0
    n = len(order)
    while t <= end:
        while i < n and loc[order[i]] <= t:
            r = order[i]
            if kinds[r] == TRADE:
                fe.on_trade(loc[r], prices[r], qtys[r], sides[r])
            else:
                _apply(book, kinds[r], sides[r], prices[r], qtys[r])
            i += 1
        while j < n and ex[j] <= t:
            _apply(ex_book, kinds[j], sides[j], prices[j], qtys[j])
            j += 1
        if ex_book.best_bid and ex_book.best_ask:
            ex_mid[t] = ex_book.mid
        if book.best_bid and book.best_ask:
            feats[t] = list(fe.sample(book, t))
            loc_mid[t] = book.mid
        t += step
    return feats, loc_mid, ex_mid


@pytest.mark.parametrize(
    ("name", "feed_latency_ns"), [("btc-usdm-2024", None), ("btc-usdm-2023", 5_000_000)]
)
def test_replayed_features_and_labels_equal_the_live_path(
    real_store: Callable[[str], Path], name: str, feed_latency_ns: int | None
) -> None:
    store = EventStore.open(real_store(name))
    d = build(store, sample_ms=100, feed_latency_ns=feed_latency_ns)
    feats, loc_mid, ex_mid = reference(store, 100, feed_latency_ns)
    assert len(d) > 4000  # 8+ minutes every 100 ms
    ts = d.ts.tolist()
    want = np.asarray([feats[t] for t in ts], dtype=np.float32)
    assert np.array_equal(d.x, want)  # bit for bit, all 64 features
    assert np.array_equal(d.mid, np.asarray([loc_mid[t] for t in ts]))
    for j, h_ns in enumerate((100_000_000, 200_000_000, 500_000_000)):
        diff = np.asarray([ex_mid[t + h_ns] - loc_mid[t] for t in ts])
        expect = np.where(diff > 0, UP, np.where(diff < 0, DOWN, FLAT))
        assert np.array_equal(d.y[:, j], expect)
    moved = (d.y != FLAT).mean(axis=0)
    # the mid moves in a minority of samples, more often over longer horizons
    assert 0.02 < moved[0] < moved[1] < moved[2] < 0.4
