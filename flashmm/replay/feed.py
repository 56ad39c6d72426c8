"""A store's events as the flat arrays the compiled core walks, plus the local (feed) timeline.

Only what moves a book or prints a trade is kept (the venue's own best bid/offer feed is for
import checks). Prices become ranks into ``px``, the sorted distinct prices, so the books are
dense arrays however far apart the recorded levels are.

Feed latency, a named assumption: a constant (local = exchange + latency), or ``None`` for the
recorded local timestamps, corrected as hftbacktest does: when the recorder's clock runs
behind the exchange (negative delays), every local stamp is shifted by the largest negative
delay, so the smallest delay becomes zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from flashmm.marketdata.store import BBO, DEPTH, SNAPSHOT, TRADE, EventStore

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class ReplayArrays:
    exch: I64
    local: I64
    kind: I64
    side: I64
    rank: I64
    qty: I64
    loc_order: I64  # event indices in local-time order
    px: I64  # price of each rank, ascending
    feed_shift_ns: int  # what the recorded-latency correction added to every local stamp

    @property
    def events(self) -> int:
        return len(self.exch)


def prepare(store: EventStore, feed_latency_ns: int | None) -> ReplayArrays:
    """Arrays for ``flashmm.replay.native.advance``; ``feed_latency_ns`` None = recorded."""
    ev = store.events
    keep = ev["kind"] != BBO
    ev = ev[keep]
    kind = ev["kind"].astype(np.int64)
    priced = (kind == DEPTH) | (kind == SNAPSHOT) | (kind == TRADE)
    px = np.unique(ev["price"][priced]).astype(np.int64)
    rank = np.searchsorted(px, ev["price"]).astype(np.int64)
    rank[~priced] = 0  # CLEAR and GAP carry no price
    exch = np.ascontiguousarray(ev["exch_ts"], dtype=np.int64)
    shift = 0
    if feed_latency_ns is None:
        local = np.ascontiguousarray(ev["local_ts"], dtype=np.int64)
        if len(local):
            worst = int((local - exch).min())
            if worst < 0:
                shift = -worst
                local = local + shift
    else:
        if feed_latency_ns < 0:
            raise ValueError(f"feed latency must be >= 0 ns, got {feed_latency_ns}")
        local = exch + feed_latency_ns
    # the local book must see book updates in sequence (store) order: a diff recorded before
    # the snapshot it follows (Binance buffers diffs while the REST snapshot is fetched)
    # cannot be applied before that snapshot, so book rows' local stamps never go backwards
    book = kind != TRADE
    if bool(book.any()):
        lb = np.maximum.accumulate(local[book])
        local = local.copy()
        local[book] = lb
    loc_order = np.argsort(local, kind="stable").astype(np.int64)
    return ReplayArrays(
        exch=exch,
        local=np.ascontiguousarray(local, dtype=np.int64),
        kind=kind,
        side=ev["side"].astype(np.int64),
        rank=rank,
        qty=ev["qty"].astype(np.int64),
        loc_order=loc_order,
        px=px,
        feed_shift_ns=shift,
    )
