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

assert (DEPTH, SNAPSHOT) == (1, 2)  # "kind <= SNAPSHOT" below means a level update

# --- S: int64 state slots -------------------------------------------------------------------
EX_I, LOC_I, EX_BB, EX_BA, LOC_BB, LOC_BA, NOW, LAST_DATA = range(8)
Q_BID, Q_ASK, LAST_CYCLE, MIN_GAP, N_RESP, N_TRADES, N_MIDS, LAST_MID2 = (
    8,
    9,
    10,
    11,
    12,
    13,
    14,
    15,
)
NEXT_ORDER, CROSSED, GAPS, TRACK_MID, QUEUE, RESP_LAT, EX_EVENTS, ACTIVE = range(16, 24)
FILLS_QUEUE, FILLS_CROSS = (
    24,
    25,
)  # fills by reaching the queue's front / by a print or book through us
N_STATE = 26

# --- F: float64 parameters ------------------------------------------------------------------
F_POWER = 0
N_PARAMS = 1

# --- ords: our orders, one row per slot ---------------------------------------------------------
O_STATE, O_SIDE, O_PRICE, O_RANK, O_QTY, O_HANDLE, O_ARRIVE, O_CANCEL = 0, 1, 2, 3, 4, 5, 6, 7
FREE, SENT, RESTING, FILLED_CANCEL_PENDING = 0, 1, 2, 3
N_SLOTS = 32

# --- R: responses to us, oldest first ---------------------------------------------------------
R_TS, R_KIND, R_HANDLE, R_PRICE, R_QTY = 0, 1, 2, 3, 4
ACK, REJECT, CANCELLED, CANCEL_REJECT, FILL = 1, 2, 3, 4, 5

# --- queue models and stop reasons ----------------------------------------------------------
RISK_AVERSE, PROB = 0, 1
STOP_TIME, STOP_REACT, STOP_FULL, STOP_END = 0, 1, 2, 3

NEVER = np.iinfo(np.int64).max

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
def _respond(S: np.ndarray, R: np.ndarray, t: int, kind: int, h: int, price: int, qty: int) -> None:
    k = S[N_RESP]
    R[k, R_TS] = t + S[RESP_LAT]
    R[k, R_KIND] = kind
    R[k, R_HANDLE] = h
    R[k, R_PRICE] = price
    R[k, R_QTY] = qty
    S[N_RESP] = k + 1


@njit(cache=True)
def _free(S: np.ndarray, ords: np.ndarray, k: int) -> None:
    ords[k, O_STATE] = FREE
    ords[k, O_CANCEL] = 0
    S[ACTIVE] -= 1


@njit(cache=True)
def _fill(S: np.ndarray, ords: np.ndarray, R: np.ndarray, k: int, t: int) -> None:
    _respond(S, R, t, FILL, ords[k, O_HANDLE], ords[k, O_PRICE], ords[k, O_QTY])
    if ords[k, O_CANCEL] > 0:
        ords[k, O_STATE] = FILLED_CANCEL_PENDING  # its cancel is still on the way: answer it then
    else:
        _free(S, ords, k)


@njit(cache=True)
def submit_place(
    S: np.ndarray, ords: np.ndarray, h: int, side: int, price: int, qty: int, arrive: int
) -> bool:
    """Our new order leaves now and reaches the exchange at ``arrive``; False if no slot."""
    for k in range(ords.shape[0]):
        if ords[k, O_STATE] == FREE:
            ords[k, O_STATE] = SENT
            ords[k, O_SIDE] = side
            ords[k, O_PRICE] = price
            ords[k, O_RANK] = -1
            ords[k, O_QTY] = qty
            ords[k, O_HANDLE] = h
            ords[k, O_ARRIVE] = arrive
            ords[k, O_CANCEL] = 0
            S[ACTIVE] += 1
            if arrive < S[NEXT_ORDER]:
                S[NEXT_ORDER] = arrive
            return True
    return False


@njit(cache=True)
def submit_cancel(S: np.ndarray, ords: np.ndarray, h: int, arrive: int) -> bool:
    """A cancel for order ``h`` reaches the exchange at ``arrive``. An order already gone gets
    its "not open" answer then too; False if no slot is free to carry it."""
    for k in range(ords.shape[0]):
        if ords[k, O_HANDLE] == h and ords[k, O_STATE] != FREE:
            if ords[k, O_CANCEL] == 0:
                ords[k, O_CANCEL] = arrive
            if arrive < S[NEXT_ORDER]:
                S[NEXT_ORDER] = arrive
            return True
    for k in range(ords.shape[0]):
        if ords[k, O_STATE] == FREE:
            ords[k, O_STATE] = FILLED_CANCEL_PENDING
            ords[k, O_HANDLE] = h
            ords[k, O_CANCEL] = arrive
            S[ACTIVE] += 1
            if arrive < S[NEXT_ORDER]:
                S[NEXT_ORDER] = arrive
            return True
    return False


@njit(cache=True)
def _next_order_time(ords: np.ndarray) -> int:
    t = NEVER
    for k in range(ords.shape[0]):
        st = ords[k, O_STATE]
        if st == SENT and ords[k, O_ARRIVE] < t:
            t = ords[k, O_ARRIVE]
        if st != FREE and ords[k, O_CANCEL] > 0 and ords[k, O_CANCEL] < t:
            t = ords[k, O_CANCEL]
    return t


@njit(cache=True)
def _orders_arrive(
    S: np.ndarray,
    ords: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    px: np.ndarray,
    ex_bid: np.ndarray,
    ex_ask: np.ndarray,
    t: int,
) -> None:
    """Cancels first, then places (as a batch is applied), for everything due at ``t``."""
    for k in range(ords.shape[0]):
        c = ords[k, O_CANCEL]
        if c > 0 and c <= t and ords[k, O_STATE] != SENT:
            if ords[k, O_STATE] == RESTING:
                _respond(S, R, t, CANCELLED, ords[k, O_HANDLE], ords[k, O_PRICE], ords[k, O_QTY])
            else:
                _respond(S, R, t, CANCEL_REJECT, ords[k, O_HANDLE], ords[k, O_PRICE], 0)
            _free(S, ords, k)
    n = len(px)
    for k in range(ords.shape[0]):
        if ords[k, O_STATE] != SENT or ords[k, O_ARRIVE] > t:
            continue
        price = ords[k, O_PRICE]
        side = ords[k, O_SIDE]
        ba, bb = S[EX_BA], S[EX_BB]
        if (side > 0 and ba < n and price >= px[ba]) or (side < 0 and bb >= 0 and price <= px[bb]):
            _respond(
                S, R, t, REJECT, ords[k, O_HANDLE], price, ords[k, O_QTY]
            )  # post-only would cross
            _free(S, ords, k)
            continue
        r = np.searchsorted(px, price)
        if r < n and px[r] == price:
            ords[k, O_RANK] = r
            Q[k, 0] = float(ex_bid[r] if side > 0 else ex_ask[r])
        else:
            ords[k, O_RANK] = -1
            Q[k, 0] = 0.0
        Q[k, 1] = 0.0
        ords[k, O_STATE] = RESTING
        _respond(S, R, t, ACK, ords[k, O_HANDLE], price, ords[k, O_QTY])
    S[NEXT_ORDER] = _next_order_time(ords)


@njit(cache=True)
def _queue_depth(S: np.ndarray, F: np.ndarray, Q: np.ndarray, k: int, prev: int, new: int) -> None:
    if S[QUEUE] == RISK_AVERSE:
        if new < Q[k, 0]:
            Q[k, 0] = float(new)
        return
    chg = float(prev - new) - Q[k, 1]
    Q[k, 1] = 0.0
    if chg < 0.0:
        if new < Q[k, 0]:
            Q[k, 0] = float(new)
        return
    front = Q[k, 0]
    back = float(prev) - front
    n = F[F_POWER]
    fb = back**n if back > 0.0 else 0.0
    ff = front**n if front > 0.0 else 0.0
    p = fb / (fb + ff) if fb + ff > 0.0 else 1.0
    est = front - (1.0 - p) * chg + min(back - p * chg, 0.0)
    Q[k, 0] = min(est, float(new))


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
