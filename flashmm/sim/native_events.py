"""The compiled simulator's events: one background event (``SimMarket.step``), the arrival
of one of our batches (``SimVenueCore._arrive``) and their bookkeeping (reports on our
orders, trade rows for the Python side, the cancel pool of background orders).

Every event takes all its random draws before it changes anything, so when a buffer runs
dry (``R_NEED_*``) it can be redone unchanged after the refill. Array layout: see
``native_book``.
"""

from __future__ import annotations

import math
from typing import Any

from flashmm.sim import native_book as nb

R_OK, R_STOP, R_REACTIVE, R_NEED_U, R_NEED_N, R_NEED_E, R_ROOM = range(7)
REP_ACK, REP_REJ_INVALID, REP_REJ_POST, REP_CANCELLED, REP_CANCEL_REJ, REP_FILL = range(1, 7)
OP_CANCEL, OP_PLACE = 0, 1
US = 1
SEED_ORDERS = 40
ROOM_SLOTS = 64  # free order slots, trade rows and report rows kept before each step
ROOM_ROWS = 2048


@nb.kernel(inline=True)
def report(
    ist: Any, fst: Any, rep: Any, rept: Any, kind: int, tag: int, t: float, a: int, b: int
) -> int:
    r = int(ist[nb.I_NREP])
    if r >= rep.shape[0]:
        raise RuntimeError("native report buffer full")
    rep[r, 0] = kind
    rep[r, 1] = tag
    rep[r, 2] = a
    rep[r, 3] = b
    rept[r, 0] = t
    rept[r, 1] = t + fst[nb.F_RL]
    ist[nb.I_NREP] = r + 1
    return r


@nb.kernel()
def finish(
    ist: Any,
    fst: Any,
    ordr: Any,
    noise: Any,
    tags: Any,
    trd: Any,
    rep: Any,
    rept: Any,
    k0: int,
    t: float,
    fills: bool,
) -> None:
    """After one event: our fills reported (market events only, as ``SimVenueCore.step``),
    trade rows given the book after the event and its time, filled background makers
    dropped from the nb.cancel pool (``SimMarket._forget_filled``) and slots released."""
    bb = ist[nb.I_BB]
    ba = ist[nb.I_BA]
    ts = int(t * 1e9)
    for k in range(k0, ist[nb.I_NTRD]):
        slot = trd[k, 3]
        left = trd[k, 4]
        if fills and trd[k, 5] == US:
            tag = ordr[slot, nb.O_AUX]
            r = report(ist, fst, rep, rept, REP_FILL, tag, t, ordr[slot, nb.O_OID], left)
            rep[r, 4] = trd[k, 0]
            rep[r, 5] = trd[k, 1]
            rep[r, 6] = -trd[k, 2]
            if left == 0:
                tags[tag, 0] = 0
        trd[k, 3] = bb
        trd[k, 4] = ba
        trd[k, 5] = ts
    pend = noise[1]
    for j in range(ist[nb.I_NPEND]):
        slot = pend[j]
        if ordr[slot, nb.O_OWNER] == 0:
            drop(ist, ordr, noise, slot)
        nb.release(ist, ordr, slot)
    ist[nb.I_NPEND] = 0


@nb.kernel(inline=True)
def drop(ist: Any, ordr: Any, noise: Any, slot: int) -> None:
    i = ordr[slot, nb.O_AUX]
    n = ist[nb.I_NNOISE] - 1
    last = noise[0, n]
    ist[nb.I_NNOISE] = n
    if last != slot:
        noise[0, i] = last
        ordr[last, nb.O_AUX] = i


@nb.kernel()
def add_noise(
    ist: Any, lev: Any, ordr: Any, noise: Any, trd: Any, dirty: Any, side: int, price: int, n: int
) -> None:
    pos = ist[nb.I_NNOISE]
    slot = nb.place_limit(ist, lev, ordr, noise[1], trd, dirty, 0, side, price, n, pos, False)
    if slot >= 0:
        noise[0, pos] = slot
        ist[nb.I_NNOISE] = pos + 1


@nb.kernel(inline=True)
def draw_next(ist: Any, fst: Any, rb: Any) -> int:
    e = ist[nb.I_EI]
    if e >= ist[nb.I_EL]:
        return R_NEED_E
    fst[nb.F_NEXT] = fst[nb.F_TIME] + rb[2, e] / (
        fst[nb.F_CONST] + fst[nb.F_CANCEL] * ist[nb.I_NNOISE]
    )
    ist[nb.I_EI] = e + 1
    ist[nb.I_NEEDNEXT] = 0
    return R_OK


@nb.kernel(inline=True)
def diffuse(ist: Any, fst: Any, rb: Any, t: float) -> int:
    """``SimMarket.run_until``'s last step: the fair value diffuses to ``t``."""
    if t > fst[nb.F_TIME]:
        c = ist[nb.I_NI]
        if c >= ist[nb.I_NL]:
            return R_NEED_N
        f = fst[nb.F_FAIR] + fst[nb.F_VOL] * math.sqrt(t - fst[nb.F_TIME]) * rb[1, c]
        ist[nb.I_NI] = c + 1
        fst[nb.F_FAIR] = f if f >= 1.0 else 1.0
        fst[nb.F_TIME] = t
    return R_OK


@nb.kernel()
def event(
    ist: Any,
    fst: Any,
    rb: Any,
    lev: Any,
    ordr: Any,
    noise: Any,
    tags: Any,
    trd: Any,
    rep: Any,
    rept: Any,
    dirty: Any,
) -> int:
    """One background event (``SimMarket.step``): every draw first, then the change."""
    cu, cn, ce = ist[nb.I_UI], ist[nb.I_NI], ist[nb.I_EI]
    lu, ln, le = ist[nb.I_UL], ist[nb.I_NL], ist[nb.I_EL]
    t = fst[nb.F_NEXT]
    if cn >= ln:
        return R_NEED_N
    fair = fst[nb.F_FAIR] + fst[nb.F_VOL] * math.sqrt(t - fst[nb.F_TIME]) * rb[1, cn]
    cn += 1
    fair = fair if fair > 1.0 else 1.0
    nn = ist[nb.I_NNOISE]
    total = fst[nb.F_CONST] + fst[nb.F_CANCEL] * nn
    if cu >= lu:
        return R_NEED_U
    x = rb[0, cu] * total
    cu += 1
    bb, ba = ist[nb.I_BB], ist[nb.I_BA]
    mid = (bb + ba) * 0.5 if bb != 0 and ba != 0 else 0.0
    if mid == 0.0:
        mid = fair
    kind = 0  # 0 idle, 1 limit, 2 nb.cancel, 3 market, 4 jump
    side = 0
    price = 0
    size = 0
    idx = 0
    limrate = fst[nb.F_LIMRATE]
    lim2 = 2 * limrate
    if x < lim2:
        side = 1 if x < limrate else -1
        anchor = mid + fst[nb.F_AW] * (fair - mid)
        if ce >= le:
            return R_NEED_E
        delta = int(rb[2, ce] / fst[nb.F_LK])
        ce += 1
        if delta < ist[nb.I_MAXDEPTH]:
            price = math.floor(anchor) - delta if side > 0 else math.ceil(anchor) + delta
            if price >= 1:
                if cn >= ln:
                    return R_NEED_N
                size = max(1, int(math.exp(fst[nb.F_MULIM] + fst[nb.F_DISP] * rb[1, cn])))
                cn += 1
                kind = 1
    else:
        x -= lim2
        cancels = fst[nb.F_CANCEL] * nn
        if x < cancels:
            if cu >= lu:
                return R_NEED_U
            idx = int(rb[0, cu] * nn)
            cu += 1
            kind = 2
        else:
            x -= cancels
            nmr = fst[nb.F_NMR]
            if x < 2 * nmr:
                side = 1 if x < nmr else -1
                kind = 3
            elif x - 2 * nmr < fst[nb.F_INF]:
                gap = fair - mid
                if abs(gap) > fst[nb.F_EDGE]:
                    side = 1 if gap > 0 else -1
                    kind = 3
            else:
                kind = 4
            if kind == 3:
                if cn >= ln:
                    return R_NEED_N
                size = max(1, int(math.exp(fst[nb.F_MUMKT] + fst[nb.F_DISP] * rb[1, cn])))
                cn += 1
            elif kind == 4:
                if cn >= ln:
                    return R_NEED_N
                fair += fst[nb.F_JSIG] * rb[1, cn]
                cn += 1
                if fair < 1.0:
                    fair = 1.0
    # --- commit ---------------------------------------------------------------------------
    ist[nb.I_UI], ist[nb.I_NI], ist[nb.I_EI] = cu, cn, ce
    fst[nb.F_FAIR] = fair
    fst[nb.F_TIME] = t
    k0 = ist[nb.I_NTRD]
    if kind == 1:
        add_noise(ist, lev, ordr, noise, trd, dirty, side, price, size)
    elif kind == 2:
        slot = noise[0, idx]
        nb.cancel(ist, lev, ordr, dirty, slot)
        drop(ist, ordr, noise, slot)
        nb.release(ist, ordr, slot)
    elif kind == 3:
        ist[nb.I_NEXT_OID] += 1
        nb.match(ist, lev, ordr, noise[1], trd, dirty, side, size, 0)
    ist[nb.I_EVENTS] += 1
    finish(ist, fst, ordr, noise, tags, trd, rep, rept, k0, t, True)
    ist[nb.I_NEEDNEXT] = 1
    return draw_next(ist, fst, rb)


@nb.kernel()
def arrival(
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
    """One of our batches reaches the matcher (``SimVenueCore._arrive``)."""
    b = ist[nb.I_ABH]
    t = abt[b]
    r = diffuse(ist, fst, rb, t)
    if r != R_OK:
        return r
    k0 = ist[nb.I_NTRD]
    for row in range(ab[b, 0], ab[b, 1]):
        tag = aq[row, 1]
        if aq[row, 0] == OP_CANCEL:
            oid = tags[tag, 0]
            tags[tag, 0] = 0
            n = 0
            if oid != 0:
                slot = tags[tag, 1]
                if ordr[slot, nb.O_OID] == oid and ordr[slot, nb.O_LOTS] > 0:
                    n = nb.cancel(ist, lev, ordr, dirty, slot)
                    nb.release(ist, ordr, slot)
            if n > 0:
                report(ist, fst, rep, rept, REP_CANCELLED, tag, t, n, 0)
            else:
                report(ist, fst, rep, rept, REP_CANCEL_REJ, tag, t, 0, 0)
            continue
        if tags[tag, 0] != 0:
            continue  # idempotent: a resubmitted client id is not placed twice
        side, price, lots = aq[row, 2], aq[row, 3], aq[row, 4]
        if lots <= 0 or price <= 0:
            report(ist, fst, rep, rept, REP_REJ_INVALID, tag, t, 0, 0)
            continue
        slot = nb.place_limit(
            ist, lev, ordr, noise[1], trd, dirty, US, side, price, lots, tag, aq[row, 5] != 0
        )
        if slot == -2:
            report(ist, fst, rep, rept, REP_REJ_POST, tag, t, 0, 0)
            continue
        oid = ist[nb.I_NEXT_OID] - 1
        report(ist, fst, rep, rept, REP_ACK, tag, t, oid, 0)
        if slot >= 0:
            tags[tag, 0] = oid
            tags[tag, 1] = slot
    ist[nb.I_ABH] = b + 1
    finish(ist, fst, ordr, noise, tags, trd, rep, rept, k0, t, False)
    return R_OK
