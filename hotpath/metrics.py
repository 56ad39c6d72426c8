"""Prometheus exposition of the hot path's stage latencies and trading counters.

The quote loop records into its own cheap histograms (``hotpath.latency``); this collector
converts them to Prometheus histograms only when scraped, so the loop never takes a lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from hotpath.engine import MarketMaker
from hotpath.latency import BUCKETS_NS, LatencyHistogram


def _buckets(h: LatencyHistogram) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    acc = 0
    for bound, n in zip(BUCKETS_NS, h.counts, strict=False):
        acc += n
        out.append((repr(bound / 1e9), float(acc)))
    out.append(("+Inf", float(h.count)))
    return out


class HotPathCollector(Collector):
    """Exposes every registered market maker's figures under ``flashmm_*`` names."""

    def __init__(self, makers: Callable[[], Iterable[MarketMaker]]) -> None:
        self._makers = makers

    def collect(self) -> Iterable[Metric]:
        lat = HistogramMetricFamily(
            "flashmm_hotpath_stage_latency_seconds",
            "Hot-path stage latency per quote cycle",
            labels=["market", "stage"],
        )
        fills = CounterMetricFamily("flashmm_fills", "Fills received", labels=["market"])
        placed = CounterMetricFamily("flashmm_orders_placed", "Orders sent", labels=["market"])
        denials = CounterMetricFamily(
            "flashmm_risk_denials", "Pre-trade risk denials", labels=["market", "reason"]
        )
        pos = GaugeMetricFamily("flashmm_position_lots", "Net position", labels=["market"])
        pnl = GaugeMetricFamily("flashmm_pnl_total_usdc", "Net PnL (USDC)", labels=["market"])
        for mm in self._makers():
            m = mm.instrument.symbol
            for stage, h in mm.timers.stages.items():
                lat.add_metric([m, stage], _buckets(h), h.total_ns / 1e9)
            fills.add_metric([m], mm.stats.fills)
            placed.add_metric([m], mm.stats.quotes_sent)
            for reason, n in mm.risk.denials.items():
                denials.add_metric([m, reason.value], n)
            pos.add_metric([m], mm.om.position.lots)
            mid = mm.book.mid
            pnl.add_metric([m], mm.om.position.net_pnl(mid) if mid else 0.0)
        yield from (lat, fills, placed, denials, pos, pnl)
