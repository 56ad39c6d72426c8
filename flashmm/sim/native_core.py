"""Compiled event core: background market, our order arrivals and matching, natively.

``advance`` runs ``SimMarket.step`` (Gillespie-style background flow) and the arrival of our
batches until something the Python side must see: the next quote or sample time, a report
reaching us when the engine's requote test fires on it, the book moving through our quote
(requote test of ``MarketMaker``), a random buffer running dry, or an output buffer
filling up. It returns one of the ``R_*`` codes. Reports (acks, cancels, fills) are
delivered natively at their due time with the touch at that time; the Python side applies
them at the next stop, before anything that could read what they change.

Random numbers come from the three buffers in ``rb`` (uniform, normal, exponential rows),
filled by Python from the same ``numpy.random.Generator`` calls ``RandomStream`` makes. Each
event takes all its draws before it changes anything; when a buffer runs dry it returns
``R_NEED_*`` unchanged and is redone after the refill, so generator calls happen in the
same order as in the Python simulator and results are bit-identical.

Every function is compiled with ``cache=True`` (on disk, next to the sources) and without
numba's reference counting (``_nrt=False``): nothing here allocates, the arrays belong to
the caller, and the counting cost more than half the time. numba keys a cached function
on its own source file only, so ``_drop_stale_caches`` discards cached entries older than
any of the three ``native_*`` kernel modules (a callee edited in another file).
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any

import numpy as np

from flashmm.sim import native_book as nb
from flashmm.sim import native_events as ne
from flashmm.sim.native_events import (
    R_NEED_N,
    R_OK,
    R_REACTIVE,
    R_ROOM,
    R_STOP,
    ROOM_ROWS,
    ROOM_SLOTS,
    SEED_ORDERS,
    add_noise,
    arrival,
    diffuse,
    draw_next,
    event,
)


@nb.kernel(inline=True)
def _requote(ist: Any, fst: Any, t: float) -> bool:
    """``MarketMaker.on_market_data``'s test: the mid moved through one of our quotes and
    the minimum requote interval has passed."""
    ts = int(t * 1e9)
    ist[nb.I_LASTTS] = ts
    fst[nb.F_LASTT] = t
    mid2 = ist[nb.I_BB] + ist[nb.I_BA]
    qb, qa = ist[nb.I_QB], ist[nb.I_QA]
    through = (qb != 0 and mid2 <= 2 * qb) or (qa != 0 and mid2 >= 2 * qa)
    return bool(through and (ts - ist[nb.I_LASTCYC]) >= fst[nb.F_MININT])


@nb.kernel(inline=True)
def _room(ist: Any, lev: Any, ordr: Any, trd: Any, rep: Any, fst: Any, extra: int) -> bool:
    if ist[nb.I_NFREE] < ROOM_SLOTS + extra:
        return False
    if trd.shape[0] - ist[nb.I_NTRD] < ROOM_ROWS or rep.shape[0] - ist[nb.I_NREP] < ROOM_ROWS:
        return False
    hi = max(ist[nb.I_BB], ist[nb.I_BA], int(fst[nb.F_FAIR]) + 1) + ist[nb.I_MARGIN]
    return bool(hi < lev.shape[1])


@nb.kernel()
def advance(
    ist: Any,
    fst: Any,
    rb: Any,
    lev: Any,
    ordr: Any,
    noise: Any,
    tags: Any,
    aq: Any,
    ab: Any,
    abt: Any,
    trd: Any,
    rep: Any,
    rept: Any,
    dirty: Any,
) -> int:
    """Run until the Python side must act; returns an ``R_*`` code (see the module doc)."""
    if ist[nb.I_SYNCED] != 0:
        for k in range(ist[nb.I_NDIRTY]):
            lev[0 if dirty[k, 0] > 0 else 1, dirty[k, 1], nb.L_DIRTY] = 0
        ist[nb.I_NDIRTY] = 0
        ist[nb.I_SYNCED] = 0
    r = _seed(ist, fst, rb, lev, ordr, noise, trd, dirty)
    if r == R_OK:
        r = _step_loop(ist, fst, rb, lev, ordr, noise, tags, aq, ab, abt, trd, rep, rept, dirty)
    for k in range(ist[nb.I_NDIRTY]):
        s = 0 if dirty[k, 0] > 0 else 1
        dirty[k, 2] = lev[s, dirty[k, 1], nb.L_LOTS]
    nb.write_top(ist, lev)
    return r


@nb.kernel()
def _seed(
    ist: Any, fst: Any, rb: Any, lev: Any, ordr: Any, noise: Any, trd: Any, dirty: Any
) -> int:
    """``SimMarket._seed_book``: a symmetric starting book, 20 levels a side."""
    while ist[nb.I_SEEDK] < SEED_ORDERS:
        k = ist[nb.I_SEEDK]
        c = ist[nb.I_NI]
        if c >= ist[nb.I_NL]:
            return R_NEED_N
        size = max(1, int(math.exp(fst[nb.F_MULIM] + fst[nb.F_DISP] * rb[1, c])))
        ist[nb.I_NI] = c + 1
        side = 1 if k % 2 == 0 else -1
        price = ist[nb.I_START] - side * (k // 2 + 1)
        add_noise(ist, lev, ordr, noise, trd, dirty, side, price, size)
        ist[nb.I_SEEDK] = k + 1
        if k + 1 == SEED_ORDERS:
            ist[nb.I_NEEDNEXT] = 1
    return R_OK


@nb.kernel()
def _step_loop(
    ist: Any,
    fst: Any,
    rb: Any,
    lev: Any,
    ordr: Any,
    noise: Any,
    tags: Any,
    aq: Any,
    ab: Any,
    abt: Any,
    trd: Any,
    rep: Any,
    rept: Any,
    dirty: Any,
) -> int:
    if ist[nb.I_NEEDNEXT] != 0:
        r = draw_next(ist, fst, rb)
        if r != R_OK:
            return r
    if ist[nb.I_CHECK] != 0:
        ist[nb.I_CHECK] = 0
        if _requote(ist, fst, fst[nb.F_TIME]):
            return R_REACTIVE
    pend = fst[nb.F_PEND]  # a run_until(t) asked for by the Python side
    while fst[nb.F_NEXT] <= pend:
        if not _room(ist, lev, ordr, trd, rep, fst, 0):
            return R_ROOM
        r = event(ist, fst, rb, lev, ordr, noise, tags, trd, rep, rept, dirty)
        if r != R_OK:
            return r
    if pend >= 0.0:
        r = diffuse(ist, fst, rb, pend)
        if r != R_OK:
            return r
        fst[nb.F_PEND] = -1.0
    stop_at = fst[nb.F_STOP]
    while True:
        mt = fst[nb.F_NEXT]
        d = ist[nb.I_RDLV]
        due = rept[d, 1] if d < ist[nb.I_NREP] else np.inf
        b = ist[nb.I_ABH]
        at = abt[b] if b < ist[nb.I_ABT] else np.inf
        hq = at if at < due else due
        if stop_at <= (hq if hq < mt else mt):
            return R_STOP
        if hq < mt:
            if due <= at:  # a report reaches us: noted with the touch at that time
                r = diffuse(ist, fst, rb, due)
                if r != R_OK:
                    return r
                rep[d, 7] = ist[nb.I_BB]
                rep[d, 8] = ist[nb.I_BA]
                ist[nb.I_RDLV] = d + 1
                if _requote(ist, fst, due):
                    return R_REACTIVE
                continue
            if not _room(ist, lev, ordr, trd, rep, fst, ab[b, 1] - ab[b, 0]):
                return R_ROOM
            r = arrival(ist, fst, rb, lev, ordr, noise, tags, aq, ab, abt, trd, rep, rept, dirty)
            if r != R_OK:
                return r
            if _requote(ist, fst, at):
                return R_REACTIVE
            continue
        if not _room(ist, lev, ordr, trd, rep, fst, 0):
            return R_ROOM
        ist[nb.I_CHECK] = 1
        r = event(ist, fst, rb, lev, ordr, noise, tags, trd, rep, rept, dirty)
        if r == R_OK:
            ist[nb.I_CHECK] = 0
            if _requote(ist, fst, mt):
                return R_REACTIVE
        elif ist[nb.I_NEEDNEXT] == 0:
            ist[nb.I_CHECK] = 0  # the event did not happen: redo it after the refill
            return r
        else:
            return r  # happened, next time still to draw: test it on the way back in


def _drop_stale_caches() -> None:
    """Forget cached compilations older than the newest kernel source (numba would reuse a
    caller compiled against an older callee from another file)."""
    mods = (nb, ne, sys.modules[__name__])
    try:
        newest = max(os.path.getmtime(str(m.__file__)) for m in mods)
    except OSError:
        return
    for mod in mods:
        for obj in list(vars(mod).values()):
            cache = getattr(obj, "_cache", None)
            index = getattr(getattr(cache, "_cache_file", None), "_index_path", None)
            if cache is None or not isinstance(index, str) or not os.path.exists(index):
                continue
            if os.path.getmtime(index) < newest:
                cache.flush()


_drop_stale_caches()
