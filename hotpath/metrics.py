"""Prometheus exposition of the hot path: PnL, fees, spread improvement, fills and orders
per side, fill rate, position utilisation, risk state, market-data age, stage latencies and
the model signal (accuracy, breaker, fallback cycles, signal age, live share).

The quote loop records into its own cheap structures; this collector turns them into
``flashmm_*`` metrics only when scraped, so the loop never takes a lock.
"""

from __future__ import annotations

import time
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
from hotpath.risk import TradingState

# every metric name this collector exports (dashboards and alerts are checked against it)
EXPORTED = (
    "flashmm_hotpath_stage_latency_seconds",
    "flashmm_pnl_total_usdc",
    "flashmm_pnl_daily_usdc",
    "flashmm_maker_fees_usdc",
    "flashmm_spread_improvement_bps",
    "flashmm_fill_rate",
    "flashmm_orders_placed",
    "flashmm_orders_filled",
    "flashmm_position_lots",
    "flashmm_position_utilisation",
    "flashmm_risk_denials",
    "flashmm_trading_state",
    "flashmm_market_data_age_seconds",
    "flashmm_prediction_accuracy",
    "flashmm_model_breaker_open",
    "flashmm_model_fallback_cycles",
    "flashmm_model_signal_age_seconds",
    "flashmm_model_live_signal_cycles",
    "flashmm_model_live_signal_share",
)


def _buckets(h: LatencyHistogram) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    acc = 0
    for bound, n in zip(BUCKETS_NS, h.counts, strict=False):
        acc += n
        out.append((repr(bound / 1e9), float(acc)))
    out.append(("+Inf", float(h.count)))
    return out


class HotPathCollector(Collector):
    """Exposes every registered market maker's figures."""

    def __init__(self, makers: Callable[[], Iterable[MarketMaker]]) -> None:
        self._makers = makers

    def collect(self) -> Iterable[Metric]:
        lat = HistogramMetricFamily(
            "flashmm_hotpath_stage_latency_seconds",
            "Hot-path stage latency per quote cycle",
            labels=["market", "stage"],
        )
        pnl = GaugeMetricFamily(
            "flashmm_pnl_total_usdc", "Net PnL since start (USDC)", labels=["market"]
        )
        daily = GaugeMetricFamily(
            "flashmm_pnl_daily_usdc", "Net PnL since the daily reset", labels=["market"]
        )
        fees = GaugeMetricFamily(
            "flashmm_maker_fees_usdc",
            "Trading fees paid (negative: rebates earned)",
            labels=["market"],
        )
        impr = GaugeMetricFamily(
            "flashmm_spread_improvement_bps",
            "Market spread minus our quoted spread (bps)",
            labels=["market"],
        )
        fill_rate = GaugeMetricFamily(
            "flashmm_fill_rate", "Fills per order placed", labels=["market"]
        )
        placed = CounterMetricFamily(
            "flashmm_orders_placed", "Orders sent", labels=["market", "side"]
        )
        filled = CounterMetricFamily(
            "flashmm_orders_filled", "Fills received", labels=["market", "side"]
        )
        pos = GaugeMetricFamily("flashmm_position_lots", "Net position (lots)", labels=["market"])
        util = GaugeMetricFamily(
            "flashmm_position_utilisation",
            "|position notional| / position limit",
            labels=["market"],
        )
        denials = CounterMetricFamily(
            "flashmm_risk_denials", "Pre-trade risk denials", labels=["market", "reason"]
        )
        state = GaugeMetricFamily(
            "flashmm_trading_state", "1 for the current trading state", labels=["market", "state"]
        )
        age = GaugeMetricFamily(
            "flashmm_market_data_age_seconds",
            "Seconds since the last market data",
            labels=["market"],
        )
        acc = GaugeMetricFamily(
            "flashmm_prediction_accuracy",
            "Live directional accuracy on non-flat moves (last 500)",
            labels=["market", "horizon"],
        )
        breaker = GaugeMetricFamily(
            "flashmm_model_breaker_open",
            "1 while the model is bypassed for the fallback",
            labels=["market"],
        )
        fallback = CounterMetricFamily(
            "flashmm_model_fallback_cycles",
            "Cycles quoted with the fallback model",
            labels=["market"],
        )
        sig_age = HistogramMetricFamily(
            "flashmm_model_signal_age_seconds",
            "Age of the latest model result at each quote cycle (background signal)",
            labels=["market"],
        )
        live = CounterMetricFamily(
            "flashmm_model_live_signal_cycles",
            "Quote cycles that used a fresh model signal (background signal)",
            labels=["market"],
        )
        share = GaugeMetricFamily(
            "flashmm_model_live_signal_share",
            "Share of cycles after warm-up quoted on a fresh model signal",
            labels=["market"],
        )
        now_ns = time.monotonic_ns()
        for mm in self._makers():
            m = mm.instrument.symbol
            for stage, h in mm.timers.stages.items():
                lat.add_metric([m, stage], _buckets(h), h.total_ns / 1e9)
            p = mm.position
            r = mm.risk_view()
            mid = mm.book.mid
            net = p.net_pnl(mid) if mid else p.realized - p.fees
            pnl.add_metric([m], net)
            daily.add_metric([m], net - r.day_start_pnl)
            fees.add_metric([m], p.fees)
            st = mm.stats
            if st.quoted_spread_n:
                diff_ticks = (st.market_spread_sum - st.quoted_spread_sum) / st.quoted_spread_n
                impr.add_metric([m], diff_ticks * mm.instrument.tick / mid * 1e4 if mid else 0.0)
            fill_rate.add_metric([m], st.fills / st.quotes_sent if st.quotes_sent else 0.0)
            placed.add_metric([m, "buy"], st.placed_buy)
            placed.add_metric([m, "sell"], st.placed_sell)
            filled.add_metric([m, "buy"], st.fills_buy)
            filled.add_metric([m, "sell"], st.fills_sell)
            pos.add_metric([m], p.lots)
            limit = r.limits.max_position_notional
            util.add_metric([m], p.notional(mid) / limit if mid else 0.0)
            for reason, n in r.denials.items():
                denials.add_metric([m, reason.value], n)
            for s in TradingState:
                state.add_metric([m, s.value], 1.0 if r.state is s else 0.0)
            status = getattr(mm.signal, "status", None)
            if status is not None:
                sig = status()
                for h, a in sig["accuracy"].items():
                    if a == a:  # NaN until the first outcome is scored
                        acc.add_metric([m, h], a)
                breaker.add_metric([m], 1.0 if sig["breaker_open"] else 0.0)
                fallback.add_metric([m], sig["fallback_cycles"])
            h_age = getattr(mm.signal, "age", None)
            if isinstance(h_age, LatencyHistogram):
                sig_age.add_metric([m], _buckets(h_age), h_age.total_ns / 1e9)
                live.add_metric([m], getattr(mm.signal, "live_cycles", 0))
                ratio = getattr(mm.signal, "live_share", None)
                if ratio is not None:
                    share.add_metric([m], ratio)
            last = r.last_data_ns
            age.add_metric([m], (now_ns - last) / 1e9 if last else float("inf"))
        yield from (
            lat,
            pnl,
            daily,
            fees,
            impr,
            fill_rate,
            placed,
            filled,
            pos,
            util,
            denials,
            state,
            age,
            acc,
            breaker,
            fallback,
            sig_age,
            live,
            share,
        )
