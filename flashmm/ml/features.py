"""The 64 features, kept incrementally from book samples and trades.

The same ``FeatureEngine`` runs live in the hot path and offline over recorded or simulated
sessions, so a replay gives bit-identical vectors: it depends only on the trades it is told
about and the book it samples, at the timestamps it is given. Each ``sample`` costs O(depth)
plus amortised O(1) window upkeep; nothing is recomputed from history.
"""

from __future__ import annotations

import math
from collections import deque

from flashmm.book.l2 import L2Book
from flashmm.ml.schema import N_FEATURES

_NS = 1_000_000_000
_LN2 = math.log(2.0)


def _ewma_alpha(halflife: float) -> float:
    return float(1.0 - 0.5 ** (1.0 / halflife))


class _Lagged:
    """The latest (ts, value) at least ``window_ns`` old, kept in amortised O(1)."""

    __slots__ = ("q", "window")

    def __init__(self, window_ns: int) -> None:
        self.window = window_ns
        self.q: deque[tuple[int, float]] = deque()

    def push(self, ts: int, v: float) -> float:
        q = self.q
        q.append((ts, v))
        cutoff = ts - self.window
        while len(q) >= 2 and q[1][0] <= cutoff:
            q.popleft()
        return q[0][1]


class _TradeWindow:
    """Signed and total volume, count and notional of trades in the last ``window_ns``."""

    __slots__ = ("count", "net", "notional", "q", "total", "window")

    def __init__(self, window_ns: int) -> None:
        self.window = window_ns
        self.q: deque[tuple[int, int, int, float]] = deque()
        self.net = 0
        self.total = 0
        self.count = 0
        self.notional = 0.0

    def add(self, ts: int, lots: int, sign: int, price: float) -> None:
        self.q.append((ts, lots, sign, price))
        self.net += lots * sign
        self.total += lots
        self.count += 1
        self.notional += price * lots

    def expire(self, now: int) -> None:
        cutoff = now - self.window
        q = self.q
        while q and q[0][0] <= cutoff:
            _, lots, sign, price = q.popleft()
            self.net -= lots * sign
            self.total -= lots
            self.count -= 1
            self.notional -= price * lots
        if not q:
            self.notional = 0.0


class FeatureEngine:
    """Call ``on_trade`` for every market trade and ``sample`` at each decision time."""

    def __init__(self) -> None:
        self.values = [0.0] * N_FEATURES
        self._mids: deque[float] = deque(maxlen=31)
        self._lag = {w: _Lagged(w * _NS) for w in (1, 5, 30)}
        self._tw = {w: _TradeWindow(w * _NS) for w in (1, 5, 30)}
        self._signs: deque[int] = deque(maxlen=50)
        self._sign_sum10 = 0
        self._sizes_ewma = 0.0
        self._large = _TradeWindow(5 * _NS)
        self._ofi: deque[float] = deque(maxlen=10)
        self._ofi_time = _TradeWindow(1 * _NS)
        self._ofi_ewma = 0.0
        self._imb_ewma = 0.0
        self._prev_imb = 0.0
        self._var_fast = 0.0
        self._var_slow = 0.0
        self._garch = 0.0
        self._ewma_fast = 0.0
        self._ewma_slow = 0.0
        self._prev_top: tuple[int, int, int, int] | None = None
        self._last_trade_ns = 0
        self._last_move_ns = 0
        self._moves: deque[int] = deque(maxlen=10)
        self._prev_q1 = (0, 0)
        self.samples = 0

    # --- events -------------------------------------------------------------------------
    def on_trade(self, ts_ns: int, price: int, lots: int, aggressor: int) -> None:
        p = float(price)
        for w in self._tw.values():
            w.add(ts_ns, lots, aggressor, p)
        signs = self._signs
        if len(signs) == signs.maxlen:
            pass
        signs.append(aggressor)
        self._sizes_ewma += 0.05 * (lots - self._sizes_ewma)
        if self._sizes_ewma and lots > 2.0 * self._sizes_ewma:
            self._large.add(ts_ns, lots, aggressor, p)
        self._last_trade_ns = ts_ns

    # --- sampling -----------------------------------------------------------------------
    def sample(self, book: L2Book, ts_ns: int, inventory_util: float = 0.0) -> list[float]:
        """Update state from the book at ``ts_ns`` and return the (reused) feature list."""
        v = self.values
        bb, ba = book.best_bid, book.best_ask
        if not (bb and ba):
            return v
        self.samples += 1
        mid = (bb + ba) * 0.5
        bids = book.depth(1, 10)
        asks = book.depth(-1, 10)
        qb1, qa1 = bids[0][1], asks[0][1]
        to_bps = 1e4 / mid

        # momentum
        mids = self._mids
        prev = mids[-1] if mids else mid
        mids.append(mid)
        n = len(mids)
        v[0] = (mid - prev) * to_bps
        v[1] = (mid - mids[max(0, n - 6)]) * to_bps
        v[2] = (mid - mids[max(0, n - 11)]) * to_bps
        v[3] = (mid - mids[0]) * to_bps
        v[4] = (mid - self._lag[1].push(ts_ns, mid)) * to_bps
        v[5] = (mid - self._lag[5].push(ts_ns, mid)) * to_bps
        v[6] = (mid - self._lag[30].push(ts_ns, mid)) * to_bps
        v[7] = ((bb * qa1 + ba * qb1) / (qa1 + qb1) - mid) * to_bps
        v[8] = (ba - bb) * to_bps
        v[9] = float(ba - bb)
        v[10] = (_wmid(bids, asks, 3) - mid) * to_bps
        v[11] = (_wmid(bids, asks, 5) - mid) * to_bps

        # depth imbalance
        imb1 = (qb1 - qa1) / (qb1 + qa1)
        v[12] = imb1
        v[13] = _imb(bids, asks, 2)
        v[14] = _imb(bids, asks, 3)
        v[15] = _imb(bids, asks, 5)
        v[16] = _imb(bids, asks, 10)
        self._imb_ewma += 0.2 * (imb1 - self._imb_ewma)
        v[17] = self._imb_ewma
        v[18] = imb1 - self._prev_imb
        self._prev_imb = imb1
        band = mid * 0.001
        nb = sum(q for p, q in bids if mid - p <= band)
        na = sum(q for p, q in asks if p - mid <= band)
        v[19] = (nb - na) / (nb + na) if nb + na else 0.0

        # order-flow imbalance at the touch since the last sample
        depth_avg = (sum(q for _, q in bids[:5]) + sum(q for _, q in asks[:5])) / 10.0 or 1.0
        top = (bb, qb1, ba, qa1)
        e = 0.0
        if self._prev_top is not None:
            pb, pqb, pa, pqa = self._prev_top
            e = (
                (qb1 if bb >= pb else 0)
                - (pqb if bb <= pb else 0)
                - (qa1 if ba <= pa else 0)
                + (pqa if ba >= pa else 0)
            )
        self._prev_top = top
        e /= depth_avg
        ofi = self._ofi
        ofi.append(e)
        v[20] = e
        v[21] = sum(list(ofi)[-5:])
        v[22] = sum(ofi)
        self._ofi_ewma += 0.2 * (e - self._ofi_ewma)
        v[23] = self._ofi_ewma
        v[24] = v[21] / 5.0
        ot = self._ofi_time
        ot.expire(ts_ns)
        ot.add(ts_ns, 1, 1, e)
        v[25] = ot.notional

        # trades
        signs = self._signs
        last10 = list(signs)[-10:]
        v[26] = sum(last10) / len(last10) if last10 else 0.0
        v[27] = sum(signs) / len(signs) if signs else 0.0
        for i, w in ((28, 1), (29, 5), (30, 30)):
            tw = self._tw[w]
            tw.expire(ts_ns)
            v[i] = tw.net / tw.total if tw.total else 0.0
        t1, t5 = self._tw[1], self._tw[5]
        v[31] = float(t1.count)
        v[32] = float(t5.count)
        v[33] = math.log1p(t1.total)
        v[34] = math.log1p(t5.total)
        v[35] = ((t5.notional / t5.total) - mid) * to_bps if t5.total else 0.0

        # volatility
        r = v[0]
        self._var_fast += _ewma_alpha(5.0) * (r * r - self._var_fast)
        self._var_slow += _ewma_alpha(50.0) * (r * r - self._var_slow)
        long_run = self._var_slow
        self._garch = 0.05 * long_run + 0.05 * r * r + 0.9 * self._garch
        v[36] = math.sqrt(self._var_fast)
        v[37] = math.sqrt(self._var_slow)
        v[38] = v[36] / v[37] if v[37] > 1e-12 else 1.0
        v[39] = math.sqrt(self._garch)
        recent = list(mids)[-10:]
        v[40] = (max(recent) - min(recent)) * to_bps
        v[41] = abs(r)

        # queue and depth shape
        for i in range(5):
            v[42 + i] = math.log1p(bids[i][1]) if i < len(bids) else 0.0
            v[47 + i] = math.log1p(asks[i][1]) if i < len(asks) else 0.0
        cb5 = sum(q for _, q in bids[:5])
        ca5 = sum(q for _, q in asks[:5])
        v[52] = math.log(cb5 / qb1)
        v[53] = math.log(ca5 / qa1)

        # time and queue dynamics
        if mid != prev:
            self._last_move_ns = ts_ns
        self._moves.append(1 if mid != prev else 0)
        v[54] = math.log1p((ts_ns - self._last_trade_ns) / _NS) if self._last_trade_ns else 5.0
        v[55] = math.log1p((ts_ns - self._last_move_ns) / _NS) if self._last_move_ns else 5.0
        v[56] = float(sum(self._moves))
        pq_b, pq_a = self._prev_q1
        v[57] = math.log((qb1 + 1) / (pq_b + 1)) if pq_b else 0.0
        v[58] = math.log((qa1 + 1) / (pq_a + 1)) if pq_a else 0.0
        self._prev_q1 = (qb1, qa1)

        # context
        v[59] = inventory_util
        if self.samples == 1:
            self._ewma_fast = self._ewma_slow = mid
        self._ewma_fast += _ewma_alpha(5.0) * (mid - self._ewma_fast)
        self._ewma_slow += _ewma_alpha(50.0) * (mid - self._ewma_slow)
        v[60] = (mid - self._ewma_slow) * to_bps
        v[61] = (mid - self._ewma_fast) * to_bps
        lg = self._large
        lg.expire(ts_ns)
        v[62] = lg.net / (lg.total + t5.total) if lg.total else 0.0
        v[63] = math.log1p(sum(q for _, q in bids) + sum(q for _, q in asks))
        return v


def _wmid(bids: list[tuple[int, int]], asks: list[tuple[int, int]], n: int) -> float:
    b = bids[:n]
    a = asks[:n]
    qb = sum(q for _, q in b)
    qa = sum(q for _, q in a)
    pb = sum(p * q for p, q in b) / qb
    pa = sum(p * q for p, q in a) / qa
    return (pb * qa + pa * qb) / (qa + qb)


def _imb(bids: list[tuple[int, int]], asks: list[tuple[int, int]], n: int) -> float:
    qb = sum(q for _, q in bids[:n])
    qa = sum(q for _, q in asks[:n])
    return (qb - qa) / (qb + qa)
