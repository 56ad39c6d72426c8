"""The compiled replay core: a recorded market and our orders on one clock, in numba.

Two books are kept over the same price ranks (every distinct price in the store): the
**exchange** book, which our orders meet at exchange time, and the **local** book, which the
engine sees after the feed latency. ``advance`` runs natively until the next quote time, or
until the local book moves through one of our quotes (a reactive requote), or until an output
buffer is full; Python then runs one engine cycle. Fill rules follow hftbacktest's
no-partial-fill exchange: an order fills entirely, at its own price, when a trade reaches it
through the queue model, when a trade prints through its price, or when the opposite best
moves through it. Our orders never change the recorded book (no market impact).

State lives in plain arrays so numba compiles one monomorphic function (cached on disk).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from flashmm.marketdata.store import CLEAR, DEPTH, GAP, SNAPSHOT, TRADE
from flashmm.replay.native_layout import *  # noqa: F403 - the layout is part of this API
from flashmm.replay.native_layout import (
    ACTIVE,
    CROSSED,
    EX_BA,
    EX_BB,
    EX_EVENTS,
    EX_I,
    FILLS_CROSS,
    FILLS_QUEUE,
    GAPS,
    LAST_CYCLE,
    LAST_DATA,
    LAST_MID2,
    LOC_BA,
    LOC_BB,
    LOC_I,
    MIN_GAP,
    N_MIDS,
    N_RESP,
    N_TRADES,
    NEVER,
    NEXT_ORDER,
    NOW,
    O_PRICE,
    O_RANK,
    O_SIDE,
    O_STATE,
    Q_ASK,
    Q_BID,
    RESTING,
    STOP_END,
    STOP_FULL,
    STOP_REACT,
    STOP_TIME,
    TRACK_MID,
)
from flashmm.replay.native_orders import (
    _fill,
    _orders_arrive,
    _queue_depth,
    submit_cancel,
    submit_place,
)

assert (DEPTH, SNAPSHOT) == (1, 2)  # "kind <= SNAPSHOT" below means a level update

__all__ = ["advance", "submit_cancel", "submit_place", "top_levels"]


@njit(cache=True)
def _scan_down(book: np.ndarray, r: int) -> int:
    j = r - 1
    while j >= 0 and book[j] == 0:
        j -= 1
    return j


@njit(cache=True)
def _scan_up(book: np.ndarray, r: int) -> int:
    n = len(book)
    j = r + 1
    while j < n and book[j] == 0:
        j += 1
    return j


@njit(cache=True)
def _exchange_event(
    S: np.ndarray,
    F: np.ndarray,
    ords: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    px: np.ndarray,
    ex_bid: np.ndarray,
    ex_ask: np.ndarray,
    kind: int,
    side: int,
    r: int,
    qty: int,
    t: int,
    live: bool,
) -> None:
    n = len(px)
    if kind <= SNAPSHOT:  # DEPTH or SNAPSHOT: an absolute level size
        if side > 0:
            prev = ex_bid[r]
            ex_bid[r] = qty
            old = S[EX_BB]
            if qty > 0:
                if r > old:
                    S[EX_BB] = r
            elif r == old:
                S[EX_BB] = _scan_down(ex_bid, r)
            if live:
                for k in range(ords.shape[0]):
                    if ords[k, O_STATE] == RESTING and ords[k, O_SIDE] > 0 and ords[k, O_RANK] == r:
                        _queue_depth(S, F, Q, k, prev, qty)
                bb = S[EX_BB]
                if bb > old and bb >= 0:
                    for k in range(ords.shape[0]):
                        st, sd, pr = ords[k, O_STATE], ords[k, O_SIDE], ords[k, O_PRICE]
                        if st == RESTING and sd < 0 and pr <= px[bb]:
                            S[FILLS_CROSS] += 1
                            _fill(S, ords, R, k, t)
        else:
            prev = ex_ask[r]
            ex_ask[r] = qty
            old = S[EX_BA]
            if qty > 0:
                if r < old:
                    S[EX_BA] = r
            elif r == old:
                S[EX_BA] = _scan_up(ex_ask, r)
            if live:
                for k in range(ords.shape[0]):
                    if ords[k, O_STATE] == RESTING and ords[k, O_SIDE] < 0 and ords[k, O_RANK] == r:
                        _queue_depth(S, F, Q, k, prev, qty)
                ba = S[EX_BA]
                if ba < old and ba < n:
                    for k in range(ords.shape[0]):
                        st, sd, pr = ords[k, O_STATE], ords[k, O_SIDE], ords[k, O_PRICE]
                        if st == RESTING and sd > 0 and pr >= px[ba]:
                            S[FILLS_CROSS] += 1
                            _fill(S, ords, R, k, t)
    elif kind == TRADE:
        if live:
            price = px[r]
            for k in range(ords.shape[0]):
                if ords[k, O_STATE] != RESTING or ords[k, O_SIDE] != -side:
                    continue
                mine = ords[k, O_PRICE]
                through = mine < price if side > 0 else mine > price
                if through:
                    S[FILLS_CROSS] += 1
                    _fill(S, ords, R, k, t)
                elif mine == price:
                    Q[k, 0] -= qty
                    Q[k, 1] += qty
                    if -Q[k, 0] >= 0.5:
                        S[FILLS_QUEUE] += 1
                        _fill(S, ords, R, k, t)
    elif kind == CLEAR:
        if side >= 0:
            ex_bid[:] = 0
            S[EX_BB] = -1
        if side <= 0:
            ex_ask[:] = 0
            S[EX_BA] = n
    elif kind == GAP:
        S[GAPS] += 1


@njit(cache=True)
def _local_event(
    S: np.ndarray,
    T: np.ndarray,
    px: np.ndarray,
    loc_bid: np.ndarray,
    loc_ask: np.ndarray,
    kind: int,
    side: int,
    r: int,
    qty: int,
    t: int,
) -> None:
    n = len(px)
    if kind <= SNAPSHOT:  # DEPTH or SNAPSHOT: an absolute level size
        if side > 0:
            loc_bid[r] = qty
            if qty > 0:
                if r > S[LOC_BB]:
                    S[LOC_BB] = r
            elif r == S[LOC_BB]:
                S[LOC_BB] = _scan_down(loc_bid, r)
        else:
            loc_ask[r] = qty
            if qty > 0:
                if r < S[LOC_BA]:
                    S[LOC_BA] = r
            elif r == S[LOC_BA]:
                S[LOC_BA] = _scan_up(loc_ask, r)
    elif kind == TRADE:
        k = S[N_TRADES]
        T[k, 0] = t
        T[k, 1] = px[r]
        T[k, 2] = qty
        T[k, 3] = side
        bb, ba = S[LOC_BB], S[LOC_BA]
        T[k, 4] = px[bb] + px[ba] if bb >= 0 and ba < n else 0
        S[N_TRADES] = k + 1
    elif kind == CLEAR:
        if side >= 0:
            loc_bid[:] = 0
            S[LOC_BB] = -1
        if side <= 0:
            loc_ask[:] = 0
            S[LOC_BA] = n
    else:
        return
    S[LAST_DATA] = t


@njit(cache=True)
def advance(
    S: np.ndarray,
    F: np.ndarray,
    until: int,
    ev_exch: np.ndarray,
    ev_local: np.ndarray,
    ev_kind: np.ndarray,
    ev_side: np.ndarray,
    ev_rank: np.ndarray,
    ev_qty: np.ndarray,
    loc_order: np.ndarray,
    px: np.ndarray,
    ex_bid: np.ndarray,
    ex_ask: np.ndarray,
    loc_bid: np.ndarray,
    loc_ask: np.ndarray,
    ords: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    T: np.ndarray,
    M: np.ndarray,
) -> int:
    """Run both timelines up to ``until`` (ns) or an earlier stop; returns the stop reason."""
    n_ev = len(ev_exch)
    n_px = len(px)
    r_cap = R.shape[0] - 2 * ords.shape[0]
    t_cap = T.shape[0] - 1
    m_cap = M.shape[0] - 1
    while True:
        if S[N_RESP] >= r_cap or S[N_TRADES] >= t_cap or S[N_MIDS] >= m_cap:
            return STOP_FULL
        ei = S[EX_I]
        li = S[LOC_I]
        t_ex = ev_exch[ei] if ei < n_ev else NEVER
        t_loc = ev_local[loc_order[li]] if li < n_ev else NEVER
        t_ord = S[NEXT_ORDER]
        t = min(t_ex, t_loc, t_ord)
        if t == NEVER:
            return STOP_END
        if t > until:
            S[NOW] = until
            return STOP_TIME
        if t_ord == t:
            _orders_arrive(S, ords, Q, R, px, ex_bid, ex_ask, t)
            continue
        if t_ex == t:
            live = S[ACTIVE] > 0
            _exchange_event(
                S, F, ords, Q, R, px, ex_bid, ex_ask,
                ev_kind[ei], ev_side[ei], ev_rank[ei], ev_qty[ei], t, live,
            )  # fmt: skip
            S[EX_I] = ei + 1
            S[EX_EVENTS] += 1
            continue
        j = loc_order[li]
        _local_event(S, T, px, loc_bid, loc_ask, ev_kind[j], ev_side[j], ev_rank[j], ev_qty[j], t)
        S[LOC_I] = li + 1
        S[NOW] = t
        if li + 1 < n_ev and ev_local[loc_order[li + 1]] == t:
            continue  # the rest of this message first: never stop on a half-applied update
        bb, ba = S[LOC_BB], S[LOC_BA]
        if bb < 0 or ba >= n_px:
            continue
        mid2 = px[bb] + px[ba]
        if px[bb] >= px[ba]:
            S[CROSSED] += 1
        if S[TRACK_MID] and mid2 != S[LAST_MID2]:
            k = S[N_MIDS]
            M[k, 0] = t
            M[k, 1] = mid2
            S[N_MIDS] = k + 1
        S[LAST_MID2] = mid2
        qb, qa = S[Q_BID], S[Q_ASK]
        if ((qb > 0 and mid2 <= 2 * qb) or (qa > 0 and mid2 >= 2 * qa)) and t - S[LAST_CYCLE] >= S[
            MIN_GAP
        ]:
            return STOP_REACT


@njit(cache=True)
def top_levels(px: np.ndarray, book: np.ndarray, best: int, side: int, n: int) -> np.ndarray:
    """The best ``n`` levels of one side as an (m, 2) array of (price, lots), best first."""
    out = np.zeros((n, 2), np.int64)
    m = 0
    j = best
    size = len(book)
    while m < n and 0 <= j < size:
        if book[j] > 0:
            out[m, 0] = px[j]
            out[m, 1] = book[j]
            m += 1
        j += -1 if side > 0 else 1
    return out[:m]
