"""The first feature set, kept incrementally: mid, microprice, spread, depth imbalance,
short-window returns and volatility, trade-flow imbalance.

Trades update running sums as they arrive; book features are read at quote time from the
live book, so a snapshot costs a few dict lookups, never a recomputation over history.
"""

from __future__ import annotations

import math

from flashmm.book.l2 import L2Book

FEATURE_NAMES: tuple[str, ...] = (
    "mid",
    "microprice_dev",
    "spread",
    "imbalance_1",
    "imbalance_3",
    "imbalance_5",
    "ret_1",
    "ret_5",
    "ret_25",
    "vol_ewma",
    "trade_flow_imbalance",
    "secs_since_trade",
)
_RING = 32


class Features:
    """Incremental market features. ``update(book, ts)`` once per quote cycle."""

    __slots__ = (
        "_flow_decay",
        "_flow_net",
        "_flow_tot",
        "_i",
        "_last_flow_ts",
        "_mids",
        "_n",
        "_var",
        "_vol_alpha",
        "last_trade_ns",
        "values",
        "vol",
    )

    def __init__(self, vol_halflife_cycles: float = 50.0, flow_halflife_s: float = 2.0) -> None:
        self._mids = [0.0] * _RING
        self._i = 0
        self._n = 0
        self._vol_alpha = 1.0 - 0.5 ** (1.0 / vol_halflife_cycles)
        self._var = 0.0
        self.vol = 0.0  # ticks per cycle
        self._flow_decay = math.log(2.0) / flow_halflife_s
        self._flow_net = 0.0
        self._flow_tot = 0.0
        self._last_flow_ts = 0
        self.last_trade_ns = 0
        self.values = [0.0] * len(FEATURE_NAMES)

    def on_trade(self, lots: int, aggressor: int, ts_ns: int) -> None:
        """Exponentially decayed signed trade volume."""
        self._decay_flow(ts_ns)
        self._flow_net += lots * aggressor
        self._flow_tot += lots
        self.last_trade_ns = ts_ns

    def _decay_flow(self, ts_ns: int) -> None:
        if self._last_flow_ts:
            f = math.exp(-self._flow_decay * (ts_ns - self._last_flow_ts) * 1e-9)
            self._flow_net *= f
            self._flow_tot *= f
        self._last_flow_ts = ts_ns

    def update(self, book: L2Book, ts_ns: int) -> list[float]:
        """Recompute the vector from the live book; returns the reused ``values`` list."""
        bb, ba = book.best_bid, book.best_ask
        if not (bb and ba):
            return self.values
        mid = (bb + ba) * 0.5
        bids, asks = book.bids, book.asks
        qb, qa = bids[bb], asks[ba]
        v = self.values
        v[0] = mid
        v[1] = (bb * qa + ba * qb) / (qa + qb) - mid
        v[2] = float(ba - bb)
        v[3] = (qb - qa) / (qb + qa)
        b3 = a3 = b5 = a5 = 0
        for i, (_, q) in enumerate(book.depth(1, 5)):
            b5 += q
            if i < 3:
                b3 += q
        for i, (_, q) in enumerate(book.depth(-1, 5)):
            a5 += q
            if i < 3:
                a3 += q
        v[4] = (b3 - a3) / (b3 + a3)
        v[5] = (b5 - a5) / (b5 + a5)
        mids = self._mids
        i = self._i
        prev = mids[(i - 1) % _RING] if self._n else mid
        mids[i] = mid
        self._i = (i + 1) % _RING
        self._n += 1
        n = self._n
        v[6] = mid - prev
        v[7] = mid - mids[(i - 5) % _RING] if n > 5 else 0.0
        v[8] = mid - mids[(i - 25) % _RING] if n > 25 else 0.0
        d = mid - prev
        self._var += self._vol_alpha * (d * d - self._var)
        self.vol = math.sqrt(self._var)
        v[9] = self.vol
        self._decay_flow(ts_ns)
        v[10] = self._flow_net / self._flow_tot if self._flow_tot > 1e-9 else 0.0
        v[11] = (ts_ns - self.last_trade_ns) * 1e-9 if self.last_trade_ns else 0.0
        return v
