"""Our orders in the compiled replay core: submitting places and cancels, their arrival at
the exchange (post-only check, queue position), responses to us, and the queue models."""

from __future__ import annotations

import numpy as np
from numba import njit

from flashmm.replay.native_layout import (
    ACK,
    ACTIVE,
    CANCEL_REJECT,
    CANCELLED,
    EX_BA,
    EX_BB,
    F_POWER,
    FILL,
    FILLED_CANCEL_PENDING,
    FREE,
    N_RESP,
    NEVER,
    NEXT_ORDER,
    O_ARRIVE,
    O_CANCEL,
    O_HANDLE,
    O_PRICE,
    O_QTY,
    O_RANK,
    O_SIDE,
    O_STATE,
    QUEUE,
    R_HANDLE,
    R_KIND,
    R_PRICE,
    R_QTY,
    R_TS,
    REJECT,
    RESP_LAT,
    RESTING,
    RISK_AVERSE,
    SENT,
)

__all__ = ["submit_cancel", "submit_place"]


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
