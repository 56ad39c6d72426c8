"""Online estimates for quoting: volatility of the mid and order-arrival intensity (A, k).

Intensity follows hftbacktest's approach: for a window of recent trades, the rate of
trades reaching at least δ ticks from the mid is λ(δ) = A·e^(−kδ); a least-squares line
through ln λ(δ) over a δ grid gives ln A and −k. The fit keeps its last good values (or the
priors) until there are enough trades.
"""

from __future__ import annotations

import math
from collections import deque


class VolEstimator:
    """EWMA of squared mid changes per second → σ in ticks/√s.

    Mid changes are sampled at least ``sample_interval_s`` apart so bid-ask bounce of the
    mid over very short intervals does not swamp the estimate.
    """

    __slots__ = ("_alpha", "_last_mid", "_last_ns", "_min_ns", "_var", "sigma")

    def __init__(
        self, prior_sigma: float, halflife_updates: float = 60.0, sample_interval_s: float = 1.0
    ) -> None:
        self.sigma = prior_sigma
        self._var = prior_sigma * prior_sigma
        self._alpha = 1.0 - 0.5 ** (1.0 / halflife_updates)
        self._min_ns = int(sample_interval_s * 1e9)
        self._last_mid = 0.0
        self._last_ns = 0

    def update(self, mid: float, ts_ns: int) -> float:
        if not self._last_ns:
            self._last_mid = mid
            self._last_ns = ts_ns
        elif ts_ns - self._last_ns >= self._min_ns:
            dt = (ts_ns - self._last_ns) * 1e-9
            d = mid - self._last_mid
            self._var += self._alpha * (d * d / dt - self._var)
            self.sigma = math.sqrt(self._var)
            self._last_mid = mid
            self._last_ns = ts_ns
        return self.sigma


class IntensityEstimator:
    """Fits λ(δ) = A·e^(−kδ) to how far from the mid recent trades reached."""

    __slots__ = ("A", "_counts", "_trades", "k", "max_depth", "min_trades", "window_s")

    def __init__(
        self,
        prior_A: float,
        prior_k: float,
        window_s: float = 60.0,
        max_depth: int = 20,
        min_trades: int = 20,
    ) -> None:
        self.A = prior_A
        self.k = prior_k
        self.window_s = window_s
        self.max_depth = max_depth
        self.min_trades = min_trades
        self._trades: deque[tuple[int, int]] = deque()  # (ts, depth bucket)
        self._counts = [0] * (max_depth + 1)  # trades in the window per depth bucket

    def on_trade(self, price: int, mid: float, ts_ns: int) -> None:
        """Record how far a trade printed from the mid (in ticks)."""
        if mid > 0:
            # distances from a mid are multiples of half a tick; round half up
            i = min(int(abs(price - mid) + 0.5), self.max_depth)
            self._trades.append((ts_ns, i))
            self._counts[i] += 1

    def fit(self, now_ns: int) -> tuple[float, float]:
        """Refit from the window ending at ``now_ns``; returns (A, k)."""
        trades = self._trades
        counts = self._counts
        cutoff = now_ns - int(self.window_s * 1e9)
        while trades and trades[0][0] < cutoff:
            counts[trades.popleft()[1]] -= 1
        if len(trades) < self.min_trades:
            return self.A, self.k
        xs: list[float] = []
        ys: list[float] = []
        at_least = 0
        for delta in range(self.max_depth, -1, -1):
            at_least += counts[delta]
            if at_least:
                xs.append(float(delta))
                ys.append(math.log(at_least / self.window_s))
        if len(xs) < 3:
            return self.A, self.k
        n = len(xs)
        mx = sum(xs) / n
        my = sum(ys) / n
        sxx = sum((x - mx) ** 2 for x in xs)
        sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
        slope = sxy / sxx
        if slope < -1e-6:
            self.k = -slope
            self.A = math.exp(my - slope * mx)
        return self.A, self.k
