"""Cheap latency histograms for the hot path (log-spaced ns buckets, exact percentiles later).

Recording is one bisect and one list increment; a bounded ring of raw samples keeps exact
p50/p99 for reports and benchmarks. Prometheus reads the buckets at scrape time.
"""

from __future__ import annotations

from bisect import bisect_left

# 1 µs .. ~1 s, 4 buckets per doubling
BUCKETS_NS: tuple[int, ...] = tuple(int(1000 * 2 ** (i / 4)) for i in range(0, 81))
STAGES: tuple[str, ...] = (
    "feed_to_book",
    "features",
    "model",
    "quoting",
    "risk",
    "order_diff",
    "cycle",
    "to_venue",  # cycle start → batch handed to the venue
)


class LatencyHistogram:
    """Counts per bucket plus a ring of the last ``keep`` raw samples."""

    __slots__ = ("_i", "_ring", "count", "counts", "keep", "total_ns")

    def __init__(self, keep: int = 8192) -> None:
        self.counts = [0] * (len(BUCKETS_NS) + 1)
        self.count = 0
        self.total_ns = 0
        self.keep = keep
        self._ring: list[int] = []
        self._i = 0

    def record(self, ns: int) -> None:
        self.counts[bisect_left(BUCKETS_NS, ns)] += 1
        self.count += 1
        self.total_ns += ns
        ring = self._ring
        if len(ring) < self.keep:
            ring.append(ns)
        else:
            ring[self._i] = ns
            self._i = (self._i + 1) % self.keep

    def percentile(self, q: float) -> float:
        """q in [0, 100] over the retained samples, in ns (0.0 when empty)."""
        if not self._ring:
            return 0.0
        s = sorted(self._ring)
        idx = min(len(s) - 1, max(0, round(q / 100.0 * (len(s) - 1))))
        return float(s[idx])

    def samples(self) -> list[int]:
        """The retained raw samples (unordered)."""
        return list(self._ring)


class StageTimers:
    """One histogram per hot-path stage."""

    __slots__ = ("stages",)

    def __init__(self) -> None:
        self.stages: dict[str, LatencyHistogram] = {s: LatencyHistogram() for s in STAGES}

    def __getitem__(self, stage: str) -> LatencyHistogram:
        return self.stages[stage]

    def summary_us(self) -> dict[str, dict[str, float]]:
        """p50/p99/count per stage, in microseconds."""
        return {
            name: {
                "p50_us": h.percentile(50) / 1000,
                "p99_us": h.percentile(99) / 1000,
                "count": float(h.count),
            }
            for name, h in self.stages.items()
        }
