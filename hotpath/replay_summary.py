"""The figures of a replay: the generated-market backtest's summary keys, plus what a replay of
real data adds (events replayed, crossed-book events seen, the assumptions it ran under)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hotpath.replay import ReplayBacktest


def _bps(x: float, mid: float) -> float:
    return x / mid * 1e4 if mid else 0.0


def summarise(bt: ReplayBacktest, wall: float) -> dict[str, Any]:
    mm = bt.mm
    pos = mm.om.position
    st = mm.stats
    mid = mm.book.mid
    eq = bt.series.equity
    peak = -math.inf
    mdd = 0.0
    for e in eq:
        peak = max(peak, e)
        mdd = max(mdd, peak - e)
    inv = bt.series.position
    n = len(inv) or 1
    inv_mean = sum(inv) / n
    inv_std = math.sqrt(sum((x - inv_mean) ** 2 for x in inv) / n)
    tick = mm.instrument.tick
    lot = mm.instrument.lot
    q_spread = st.quoted_spread_sum / st.quoted_spread_n if st.quoted_spread_n else 0.0
    m_spread = st.market_spread_sum / st.quoted_spread_n if st.quoted_spread_n else 0.0
    mid_px = mid * tick if mid else 0.0
    m = bt.store.manifest
    events = bt.core.exchange_events
    cfg = bt.cfg
    return {
        "symbol": mm.instrument.symbol,
        "data": str(bt.store.path),
        "data_from_utc": m.to_json()["time_range"]["first_utc"],
        "minutes": (m.last_exch_ns - m.first_exch_ns) / 60e9,
        "pnl_total": pos.net_pnl(mid) if mid else pos.realized - pos.fees,
        "pnl_realized": pos.realized,
        "pnl_unrealized": pos.unrealized(mid) if mid else 0.0,
        "fees": pos.fees,
        "fills": pos.fill_count,
        "volume_base": pos.volume_lots * lot,
        "volume_quote": sum(p * q for _, _, p, q in bt.fills) * mm.om.lot_value,
        "position_base": pos.lots * lot,
        "orders_placed": st.quotes_sent,
        "cancels_sent": st.cancels_sent,
        "fill_rate": pos.fill_count / st.quotes_sent if st.quotes_sent else 0.0,
        "avg_quoted_spread_bps": _bps(q_spread * tick, mid_px),
        "avg_market_spread_bps": _bps(m_spread * tick, mid_px),
        "spread_improvement_pct": (1 - q_spread / m_spread) * 100 if m_spread else 0.0,
        "inventory_mean_lots": inv_mean,
        "inventory_std_lots": inv_std,
        "inventory_min_lots": min(inv, default=0),
        "inventory_max_lots": max(inv, default=0),
        "max_position_notional": bt.max_abs_position_notional,
        "max_drawdown": mdd,
        "risk_denials": {r.value: c for r, c in mm.risk.denials.items() if c},
        "final_state": mm.risk.state.value,
        "cycles": st.cycles,
        "reactive_cycles": st.reactive_cycles,
        "market_events": events,
        "data_events": events,
        "book_crossed_events": bt.core.crossed_events,
        "sequence_gaps": bt.core.gaps,
        "fills_by_queue": bt.core.fills_by_queue,
        "fills_by_cross": bt.core.fills_by_cross,
        "queue_model": cfg.queue,
        "latency_ms": cfg.latency_ms,
        "strategy": mm.params.model.value,
        "assumptions": cfg.assumptions(),
        "python_stops": bt.stops,
        "wall_s": wall,
        "events_per_s": events / wall if wall > 0 else 0.0,
        "cycle_p50_us": mm.timers["cycle"].percentile(50) / 1000,
        "cycle_p99_us": mm.timers["cycle"].percentile(99) / 1000,
    }
