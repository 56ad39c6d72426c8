"""Compiled price-time matching over arrays, the native twin of ``flashmm.sim.matching``.

State lives in a few numpy arrays (layout constants below) so the compiled event core can
keep the book between calls without Python objects:

* ``ist`` (int64) and ``fst`` (float64): scalar state, indexed by the ``I_*``/``F_*``
  constants;
* ``lev`` (int64, 2 × price capacity × 4): per side (0 bids, 1 asks) and price, the
  aggregate lots, the first and last order slot of the FIFO queue, and a dirty flag;
* ``ordr`` (int64, slots × 8): one row per resting order, a doubly linked FIFO per level;
  free slots form a list through ``O_NEXT``;
* ``dirty`` (int64, rows × 3): (side, price, lots) of levels changed since the Python book
  was last synchronised;
* ``trd`` (int64, rows × 6): executions for the Python side, in order, with the best bid and
  ask after the event that made them and its time in ns.

Semantics are those of ``Exchange`` and ``L2Book``: aggregate levels, best prices moving to
the next occupied tick when the best level empties, cancels removing an order at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
from numba import njit

F = TypeVar("F", bound=Callable[..., Any])


def kernel(inline: bool = False) -> Callable[[F], F]:
    """The one way kernels are compiled: cached on disk, no reference counting (nothing
    allocates; the arrays belong to the Python caller), small helpers inlined."""
    opts: dict[str, Any] = {"cache": True, "_nrt": False}
    if inline:
        opts["inline"] = "always"
    return cast(Callable[[F], F], njit(**opts))


# --- ist: int state ------------------------------------------------------------------------
I_EVENTS = 0  # background events processed
I_NEXT_OID = 1
I_NNOISE = 2  # resting background orders (the cancel pool)
I_UI, I_NI, I_EI = 3, 4, 5  # read positions in the uniform / normal / exponential buffers
I_UL, I_NL, I_EL = 6, 7, 8  # filled lengths of those buffers
I_NTRD = 9
I_NREP = 10
I_NDIRTY = 11
I_BB = 12
I_BA = 13
I_QB = 14  # our innermost quoted bid / ask (0 = none), for the requote test
I_QA = 15
I_LASTCYC = 16  # ns of the last quote cycle
I_NBID = 17  # occupied levels per side
I_NASK = 18
I_FREE = 19  # head of the free slot list (-1 = none)
I_NFREE = 20
I_ABH = 21  # arrival batches: head, tail; op rows used
I_ABT = 22
I_AQT = 23
I_SYNCED = 24  # 1: Python has applied the dirty list, clear it on the next call
I_LASTTS = 25  # ns of the last event Python must tell the engine about (-1 = none)
I_NEEDNEXT = 26  # 1: the next event time is still to be drawn
I_CHECK = 27  # 1: the requote test for the last event is still due
I_MAXDEPTH = 28
I_NPEND = 29  # filled background makers awaiting removal from the cancel pool
I_SEEDK = 30  # seed orders placed so far
I_MARGIN = 31  # price headroom kept above the book (ticks)
I_START = 32  # the seed book's centre (ticks)
I_RDLV = 33  # reports delivered (due and noted), the first I_RDLV of the I_NREP rows
TOP = 10  # levels per side kept for L2Book.depth
I_TOP = 40  # bid prices, bid lots, ask prices, ask lots: TOP each; then the two counts
N_IST = I_TOP + 4 * TOP + 2

# --- fst: float state and parameters -------------------------------------------------------
F_TIME = 0
F_FAIR = 1
F_NEXT = 2
F_STOP = 4  # next quote or sample time
F_PEND = 5  # run_until target still to apply (-1 = none)
F_LASTT = 6
F_VOL, F_JSIG, F_LK, F_AW, F_CANCEL, F_NMR, F_INF, F_EDGE = 7, 8, 9, 10, 11, 12, 13, 14
F_DISP, F_MULIM, F_MUMKT, F_LIMRATE, F_CONST, F_RL, F_MININT = 15, 16, 17, 18, 19, 20, 21
N_FST = 24

# --- array columns -------------------------------------------------------------------------
L_LOTS, L_HEAD, L_TAIL, L_DIRTY = 0, 1, 2, 3
O_OID, O_OWNER, O_SIDE, O_PRICE, O_LOTS, O_NEXT, O_PREV, O_AUX = 0, 1, 2, 3, 4, 5, 6, 7
N_OCOL = 8


def new_levels(capacity: int) -> Any:
    lev = np.zeros((2, capacity, 4), np.int64)
    lev[:, :, L_HEAD] = -1
    lev[:, :, L_TAIL] = -1
    return lev


def new_orders(n: int, first_free: int = 0) -> Any:
    ordr = np.zeros((n, N_OCOL), np.int64)
    ordr[:, O_NEXT] = np.arange(first_free + 1, first_free + n + 1)
    ordr[-1, O_NEXT] = -1
    return ordr


@kernel(inline=True)
def set_level(ist: Any, lev: Any, dirty: Any, side: int, price: int, lots: int) -> None:
    """``L2Book.set_level``: absolute size at a level, best prices kept, change noted."""
    s = 0 if side > 0 else 1
    old = lev[s, price, L_LOTS]
    lev[s, price, L_LOTS] = lots
    if lev[s, price, L_DIRTY] == 0:
        lev[s, price, L_DIRTY] = 1
        k = ist[I_NDIRTY]
        dirty[k, 0] = side
        dirty[k, 1] = price
        ist[I_NDIRTY] = k + 1
    cnt = I_NBID if s == 0 else I_NASK
    if lots > 0:
        if old == 0:
            ist[cnt] += 1
        if s == 0:
            if price > ist[I_BB]:
                ist[I_BB] = price
        elif ist[I_BA] == 0 or price < ist[I_BA]:
            ist[I_BA] = price
    elif old > 0:
        ist[cnt] -= 1
        if s == 0 and price == ist[I_BB]:
            p = price - 1
            if ist[cnt] == 0:
                p = 0
            while p > 0 and lev[0, p, L_LOTS] == 0:
                p -= 1
            ist[I_BB] = p
        elif s == 1 and price == ist[I_BA]:
            p = price + 1
            if ist[cnt] == 0:
                p = 0
            else:
                while lev[1, p, L_LOTS] == 0:
                    p += 1
            ist[I_BA] = p


@kernel(inline=True)
def alloc(ist: Any, ordr: Any) -> int:
    slot = int(ist[I_FREE])
    if slot < 0:
        raise RuntimeError("native order pool exhausted")
    ist[I_FREE] = ordr[slot, O_NEXT]
    ist[I_NFREE] -= 1
    return slot


@kernel(inline=True)
def release(ist: Any, ordr: Any, slot: int) -> None:
    ordr[slot, O_OID] = 0
    ordr[slot, O_LOTS] = 0
    ordr[slot, O_NEXT] = ist[I_FREE]
    ist[I_FREE] = slot
    ist[I_NFREE] += 1


@kernel(inline=True)
def unlink(lev: Any, ordr: Any, slot: int) -> None:
    s = 0 if ordr[slot, O_SIDE] > 0 else 1
    price = ordr[slot, O_PRICE]
    nxt = ordr[slot, O_NEXT]
    prv = ordr[slot, O_PREV]
    if prv >= 0:
        ordr[prv, O_NEXT] = nxt
    else:
        lev[s, price, L_HEAD] = nxt
    if nxt >= 0:
        ordr[nxt, O_PREV] = prv
    else:
        lev[s, price, L_TAIL] = prv


@kernel()
def match(
    ist: Any,
    lev: Any,
    ordr: Any,
    pend: Any,
    trd: Any,
    dirty: Any,
    side: int,
    lots: int,
    limit: int,
) -> int:
    """Fill ``lots`` against the other side up to ``limit`` (0 = none); returns lots left.

    Fully filled makers leave their queue; their slots go to ``pend`` to be released (and
    dropped from the cancel pool) after the event, as ``SimMarket._forget_filled`` does."""
    o = 1 if side > 0 else 0
    while lots > 0:
        best = ist[I_BA] if side > 0 else ist[I_BB]
        if best == 0:
            break
        if limit != 0 and ((side > 0 and best > limit) or (side < 0 and best < limit)):
            break
        level_lots = lev[o, best, L_LOTS]
        slot = lev[o, best, L_HEAD]
        while lots > 0 and slot >= 0:
            m = ordr[slot, O_LOTS]
            n = m if m < lots else lots
            m -= n
            ordr[slot, O_LOTS] = m
            lots -= n
            level_lots -= n
            k = ist[I_NTRD]
            if k >= trd.shape[0]:
                raise RuntimeError("native trade buffer full")
            trd[k, 0] = best
            trd[k, 1] = n
            trd[k, 2] = side
            trd[k, 3] = slot  # the maker's slot until the event ends (then best bid)
            trd[k, 4] = m  # the maker's lots left (then best ask)
            trd[k, 5] = ordr[slot, O_OWNER]
            ist[I_NTRD] = k + 1
            nxt = ordr[slot, O_NEXT]
            if m == 0:
                lev[o, best, L_HEAD] = nxt
                if nxt >= 0:
                    ordr[nxt, O_PREV] = -1
                else:
                    lev[o, best, L_TAIL] = -1
                pend[ist[I_NPEND]] = slot
                ist[I_NPEND] += 1
            slot = nxt
        set_level(ist, lev, dirty, -side, best, level_lots)
    return lots


@kernel()
def place_limit(
    ist: Any,
    lev: Any,
    ordr: Any,
    pend: Any,
    trd: Any,
    dirty: Any,
    owner: int,
    side: int,
    price: int,
    lots: int,
    aux: int,
    post_only: bool,
) -> int:
    """``Exchange.place_limit``: returns the resting slot, -1 if nothing rests, -2 if a
    post-only order would cross. The order id is ``ist[I_NEXT_OID] - 1`` afterwards."""
    if price >= lev.shape[1] - 1:
        raise RuntimeError("price beyond the native book's capacity")
    if post_only:
        if side > 0:
            if ist[I_BA] != 0 and price >= ist[I_BA]:
                return -2
        elif ist[I_BB] != 0 and price <= ist[I_BB]:
            return -2
    oid = ist[I_NEXT_OID]
    ist[I_NEXT_OID] = oid + 1
    left = match(ist, lev, ordr, pend, trd, dirty, side, lots, price)
    if left <= 0:
        return -1
    slot = alloc(ist, ordr)
    s = 0 if side > 0 else 1
    tail = lev[s, price, L_TAIL]
    ordr[slot, O_OID] = oid
    ordr[slot, O_OWNER] = owner
    ordr[slot, O_SIDE] = side
    ordr[slot, O_PRICE] = price
    ordr[slot, O_LOTS] = left
    ordr[slot, O_NEXT] = -1
    ordr[slot, O_PREV] = tail
    ordr[slot, O_AUX] = aux
    if tail >= 0:
        ordr[tail, O_NEXT] = slot
    else:
        lev[s, price, L_HEAD] = slot
    lev[s, price, L_TAIL] = slot
    set_level(ist, lev, dirty, side, price, lev[s, price, L_LOTS] + left)
    return slot


@kernel()
def cancel(ist: Any, lev: Any, ordr: Any, dirty: Any, slot: int) -> int:
    """``Exchange.cancel`` of a resting order by slot; returns the lots removed. The caller
    releases the slot."""
    n = int(ordr[slot, O_LOTS])
    side = ordr[slot, O_SIDE]
    price = ordr[slot, O_PRICE]
    unlink(lev, ordr, slot)
    ordr[slot, O_LOTS] = 0
    s = 0 if side > 0 else 1
    set_level(ist, lev, dirty, side, price, lev[s, price, L_LOTS] - n)
    return n


@kernel(inline=True)
def write_top(ist: Any, lev: Any) -> None:
    """The best ``TOP`` levels of each side into ``ist[I_TOP:]`` (``L2Book.depth``)."""
    for s in range(2):
        base = I_TOP + 2 * TOP * s
        left = ist[I_NBID + s]
        p = ist[I_BB + s]
        step = -1 if s == 0 else 1
        k = 0
        while k < TOP and left > 0:
            q = lev[s, p, L_LOTS]
            if q > 0:
                ist[base + k] = p
                ist[base + TOP + k] = q
                k += 1
                left -= 1
            p += step
        ist[I_TOP + 4 * TOP + s] = k
