"""Prometheus metrics of the localnet process: height, transactions, rejects, subscribers."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from flashmm.localnet.server import Localnet


class LocalnetCollector(Collector):
    def __init__(self, node: Localnet) -> None:
        self.node = node

    def collect(self) -> Iterable[Metric]:
        n = self.node
        height = GaugeMetricFamily("flashmm_localnet_height", "Latest block height")
        height.add_metric([], n.chain.height)
        txs = CounterMetricFamily(
            "flashmm_localnet_txs", "Transactions by CheckTx outcome", labels=["result"]
        )
        txs.add_metric(["accepted"], len(n.chain.results) + len(n.chain.mempool))
        txs.add_metric(["rejected"], n.rejected)
        subs = GaugeMetricFamily("flashmm_localnet_subscribers", "WebSocket subscribers")
        subs.add_metric([], len(n.hub.subscribers))
        bad = CounterMetricFamily(
            "flashmm_localnet_malformed_requests", "Malformed WebSocket requests"
        )
        bad.add_metric([], n.hub.malformed)
        yield from (height, txs, subs, bad)
