"""The figures of a replay: the generated-market backtest's trading figures, plus what a
replay of real data adds (events replayed, crossed-book events seen, how our fills came, the
assumptions it ran under)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hotpath.summary import trading_figures

if TYPE_CHECKING:
    from hotpath.replay import ReplayBacktest


def summarise(bt: ReplayBacktest, wall: float) -> dict[str, Any]:
    mm = bt.mm
    m = bt.store.manifest
    core = bt.core
    cfg = bt.cfg
    events = core.exchange_events
    figures = trading_figures(mm, bt.series, bt.fills, bt.max_abs_position_notional, events, wall)
    return {
        "symbol": mm.instrument.symbol,
        "data": str(bt.store.path),
        "data_from_utc": m.to_json()["time_range"]["first_utc"],
        "minutes": (m.last_exch_ns - m.first_exch_ns) / 60e9,
        **figures,
        "position_base": mm.position.lots * mm.instrument.lot,
        "data_events": events,
        "book_crossed_events": core.crossed_events,
        "sequence_gaps": core.gaps,
        "fills_by_queue": core.fills_by_queue,
        "fills_by_cross": core.fills_by_cross,
        "queue_model": cfg.queue,
        "latency_ms": cfg.latency_ms,
        "strategy": mm.params.model.value,
        "assumptions": cfg.assumptions(),
        "python_stops": bt.stops,
    }
