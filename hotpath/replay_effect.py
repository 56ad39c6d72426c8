"""The trading effect of a model signal on a real replay: the same store, the same
``ReplayConfig`` (latencies, queue model, fees, limits), the engine run once with the signal
off and once with it on; P&L, fills, inventory and adverse selection side by side.

Adverse selection of a fill is the exchange mid's move against us ``h`` after it:
``-side × (mid(t + h) - mid(t))`` in ticks, where ``t`` is the fill's exchange time (the
response time less the response latency) and the mid is the exchange book's after every
event at or before that time (exact: every change of the exchange mid is kept). Markout is
the edge left after ``h``: ``side × (mid(t + h) - price)``. Both are averaged over fills,
weighted by their lots.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from flashmm.marketdata.store import EventStore
from flashmm.replay import native as nv
from flashmm.replay.core import ReplayCore, warm_up
from flashmm.replay.feed import prepare
from hotpath.engine import Signal
from hotpath.replay import ReplayBacktest, ReplayConfig

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
HORIZONS_MS = (100, 500)
FIGURES = (
    "pnl_total",
    "pnl_realized",
    "pnl_unrealized",
    "fees",
    "fills",
    "volume_base",
    "position_base",
    "orders_placed",
    "inventory_mean_lots",
    "inventory_std_lots",
    "inventory_min_lots",
    "inventory_max_lots",
    "max_position_notional",
    "max_drawdown",
    "avg_quoted_spread_bps",
)


def exchange_mids(store: EventStore) -> tuple[I64, F64]:
    """Every change of the exchange mid (ticks) and its time (ns, the replay's clock): the
    store replayed with zero feed latency, so the tracked local mid is the exchange's."""
    arrays = prepare(store, 0)
    warm_up()
    core = ReplayCore(arrays, 0, 0, track_mids=True, buffer=1 << 16)
    parts = []
    while core.advance(nv.NEVER - 1) == nv.STOP_FULL:
        core.take_trades()
        parts.append(core.take_mids())
    parts.append(core.take_mids())
    rows = np.concatenate(parts) if parts else np.zeros((0, 2), np.int64)
    ts: I64 = np.ascontiguousarray(rows[:, 0], dtype=np.int64)
    mids: F64 = rows[:, 1].astype(np.float64) * 0.5
    return ts, mids


def _mid_at(ts: I64, mids: F64, t: npt.NDArray[np.int64]) -> F64:
    i = np.searchsorted(ts, t, side="right") - 1
    out: F64 = np.where(i >= 0, mids[np.clip(i, 0, len(mids) - 1)], np.nan)
    return out


def adverse_selection(
    fills: list[tuple[float, int, int, int]],
    t0_ns: int,
    response_latency_ns: int,
    ts: I64,
    mids: F64,
    horizons_ms: tuple[int, ...] = HORIZONS_MS,
    end_ns: int | None = None,
) -> dict[str, float | int]:
    """Lot-weighted adverse selection and markout (ticks) and the share of fills the mid
    moved against, per horizon; fills as ``ReplayBacktest.fills`` (t_s, side, price, lots).
    A fill is scored at ``h`` only if the data runs past ``t + h`` (``end_ns``, default the
    last mid time)."""
    end = int(ts[-1]) if end_ns is None else end_ns
    out: dict[str, float | int] = {"fills_scored": 0}
    if not fills:
        return out
    arr = np.asarray(fills, dtype=np.float64)
    t = (t0_ns + np.rint(arr[:, 0] * 1e9)).astype(np.int64) - response_latency_ns
    side, price, lots = arr[:, 1], arr[:, 2], arr[:, 3]
    m0 = _mid_at(ts, mids, t)
    for h in horizons_ms:
        mh = _mid_at(ts, mids, t + h * 1_000_000)
        ok = np.isfinite(m0) & np.isfinite(mh) & (t + h * 1_000_000 <= end)
        w = lots[ok]
        if not w.sum():
            continue
        against = -side[ok] * (mh[ok] - m0[ok])
        markout = side[ok] * (mh[ok] - price[ok])
        out[f"adverse_{h}ms_ticks"] = float(np.average(against, weights=w))
        out[f"markout_{h}ms_ticks"] = float(np.average(markout, weights=w))
        out[f"against_share_{h}ms"] = float(np.mean(against > 0))
        out["fills_scored"] = int(ok.sum())
    return out


def run_one(
    store: EventStore, cfg: ReplayConfig, signal: Signal | None, ts: I64, mids: F64
) -> dict[str, Any]:
    """One replay: the summary's figures plus adverse selection of its fills."""
    bt = ReplayBacktest(store, cfg, signal)
    result = bt.run()
    s = result.summary
    out: dict[str, Any] = {k: s[k] for k in FIGURES if k in s}
    lat = int(cfg.latency_ms * 1e6)
    end = store.manifest.last_exch_ns
    out.update(adverse_selection(result.fills, bt.core.first_local_ns, lat, ts, mids, end_ns=end))
    return out


def trading_effect(store: EventStore, cfg: ReplayConfig, signal_on: Signal) -> dict[str, Any]:
    """Signal off vs on over the same store and assumptions, with the differences."""
    ts, mids = exchange_mids(store)
    off = run_one(store, cfg, None, ts, mids)
    on = run_one(store, cfg, signal_on, ts, mids)
    diff = {
        k: on[k] - off[k]
        for k in on
        if k in off and isinstance(on[k], int | float) and isinstance(off[k], int | float)
    }
    return {
        "symbol": store.instrument.symbol,
        "store": str(store.path),
        "assumptions": {
            **cfg.assumptions(),
            "quote_hz": cfg.quote_hz,
            "strategy": cfg.quoting.model.value,
        },
        "off": off,
        "on": on,
        "on_minus_off": diff,
    }
