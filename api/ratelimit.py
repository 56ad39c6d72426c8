"""Token-bucket rate limiting per (identity, endpoint class), in memory.

Each API replica limits on its own (N replicas allow N times the rate); that keeps the
emergency stop free of any shared store. Buckets idle long enough to be full are dropped.

``take`` spends a token on every request; ``wait`` only looks (a failure budget is checked
before the work and ``take``-n only when the work failed) and ``forget`` refills a bucket
(a successful login clears that user's failures from that address)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from flashmm.config.api import RateLimit


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(self, limits: dict[str, RateLimit], max_keys: int = 100_000) -> None:
        self.limits = limits
        self.max_keys = max_keys
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def take(self, cls: str, identity: str, now: float | None = None) -> float:
        """0.0 when allowed (a token is taken), else seconds until the next token."""
        limit = self.limits[cls]
        now = time.monotonic() if now is None else now
        key = (cls, identity)
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) >= self.max_keys:
                self._sweep(now)
            b = self._buckets[key] = _Bucket(float(limit.burst), now)
        b.tokens = min(float(limit.burst), b.tokens + (now - b.at) * limit.rate)
        b.at = now
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return 0.0
        return (1.0 - b.tokens) / limit.rate

    def wait(self, cls: str, identity: str, now: float | None = None) -> float:
        """Seconds until a token is available (0.0: one is), taking none."""
        b = self._buckets.get((cls, identity))
        if b is None:
            return 0.0
        limit = self.limits[cls]
        now = time.monotonic() if now is None else now
        tokens = min(float(limit.burst), b.tokens + (now - b.at) * limit.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / limit.rate

    def forget(self, cls: str, identity: str) -> None:
        self._buckets.pop((cls, identity), None)

    def _sweep(self, now: float) -> None:
        for key, b in list(self._buckets.items()):
            limit = self.limits[key[0]]
            if b.tokens + (now - b.at) * limit.rate >= limit.burst:
                del self._buckets[key]
        if len(self._buckets) >= self.max_keys:  # all busy: forget the oldest half
            for key, _ in sorted(self._buckets.items(), key=lambda kv: kv[1].at)[
                : self.max_keys // 2
            ]:
                del self._buckets[key]


def retry_after(wait_s: float) -> str:
    return str(max(1, math.ceil(wait_s)))
