"""The trading figures every backtest reports (generated market or replayed recording):
PnL, fills, volume, spreads, inventory, drawdown, risk denials, cycle timings."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hotpath.backtest import Series
    from hotpath.engine import MarketMaker


def _bps(x: float, mid: float) -> float:
    return x / mid * 1e4 if mid else 0.0


def trading_figures(
    mm: MarketMaker,
    series: Series,
    fills: list[tuple[float, int, int, int]],
    max_position_notional: float,
    events: int,
    wall: float,
) -> dict[str, Any]:
    pos = mm.position
    risk = mm.risk_view()
    st = mm.stats
    mid = mm.book.mid
    peak = -math.inf
    mdd = 0.0
    for e in series.equity:
        peak = max(peak, e)
        mdd = max(mdd, peak - e)
    inv = series.position
    n = len(inv) or 1
    inv_mean = sum(inv) / n
    inv_std = math.sqrt(sum((x - inv_mean) ** 2 for x in inv) / n)
    tick = mm.instrument.tick
    q_spread = st.quoted_spread_sum / st.quoted_spread_n if st.quoted_spread_n else 0.0
    m_spread = st.market_spread_sum / st.quoted_spread_n if st.quoted_spread_n else 0.0
    mid_px = mid * tick if mid else 0.0
    return {
        "pnl_total": pos.net_pnl(mid) if mid else pos.realized - pos.fees,
        "pnl_realized": pos.realized,
        "pnl_unrealized": pos.unrealized(mid) if mid else 0.0,
        "fees": pos.fees,
        "fills": pos.fill_count,
        "volume_base": pos.volume_lots * mm.instrument.lot,
        "volume_quote": sum(p * q for _, _, p, q in fills) * mm.instrument.notional_per_tick_lot,
        "orders_placed": st.quotes_sent,
        "cancels_sent": st.cancels_sent,
        "fill_rate": pos.fill_count / st.quotes_sent if st.quotes_sent else 0.0,
        # per quote cycle where we had both sides: ours and everyone else's touch then. Not
        # the spread improvement: a market without us is another market (hotpath/backtest.py
        # runs it as a counterfactual); this only says how our quotes sat against the others'
        "avg_quoted_spread_bps": _bps(q_spread * tick, mid_px),
        "avg_market_spread_bps": _bps(m_spread * tick, mid_px),
        "quoted_vs_others_pct": (1 - q_spread / m_spread) * 100 if m_spread else 0.0,
        "inventory_mean_lots": inv_mean,
        "inventory_std_lots": inv_std,
        "inventory_min_lots": min(inv, default=0),
        "inventory_max_lots": max(inv, default=0),
        "max_position_notional": max_position_notional,
        "max_drawdown": mdd,
        "risk_denials": {r.value: c for r, c in risk.denials.items() if c},
        "final_state": risk.state.value,
        "cycles": st.cycles,
        "reactive_cycles": st.reactive_cycles,
        "market_events": events,
        "wall_s": wall,
        "events_per_s": events / wall if wall > 0 else 0.0,
        "cycle_p50_us": mm.timers["cycle"].percentile(50) / 1000,
        "cycle_p99_us": mm.timers["cycle"].percentile(99) / 1000,
    }
