"""The trading effect of a model signal on a real replay: the same store, the same
``ReplayConfig`` (latencies, queue model, fees, limits), the engine run once with the signal
off and once with it on; P&L, fills, inventory and adverse selection side by side.

Adverse selection of a fill is the exchange mid's move against us ``h`` after it:
``-side × (mid(t + h) - mid(t))`` in ticks, where ``t`` is the fill's exchange time (the
response time less the response latency) and the mid is the exchange book's, read on a grid
of ``grid_ms`` (the last value at or before each time). Markout is the edge left after ``h``:
``side × (mid(t + h) - price)``. Both are averaged per fill, weighted by its lots.
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


def exchange_mids(store: EventStore, grid_ms: float = 10.0) -> tuple[I64, F64]:
    """(times ns, exchange mid in ticks) every ``grid_ms`` over the whole store (NaN while a
    side is empty); times share the replay's clock."""
    arrays = prepare(store, 0)
    warm_up()
    core = ReplayCore(arrays, 0, 0, buffer=1 << 16)
    step = int(grid_ms * 1e6)
    t0 = int(arrays.exch[0])
    n = (int(arrays.exch[-1]) - t0) // step + 2
    ts = t0 + step * np.arange(n, dtype=np.int64)
    mids = np.full(n, np.nan)
    px, S = arrays.px, core.S
    for k in range(n):
        while core.advance(int(ts[k])) == nv.STOP_FULL:
            core.take_trades()
        core.take_trades()
        bb, ba = int(S[nv.EX_BB]), int(S[nv.EX_BA])
        if bb >= 0 and ba < len(px):
            mids[k] = (int(px[bb]) + int(px[ba])) * 0.5
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
) -> dict[str, float | int]:
    """Lot-weighted adverse selection and markout (ticks) and the share of fills the mid
    moved against, per horizon; fills as ``ReplayBacktest.fills`` (t_s, side, price, lots)."""
    out: dict[str, float | int] = {"fills_scored": 0}
    if not fills:
        return out
    arr = np.asarray(fills, dtype=np.float64)
    t = (t0_ns + np.rint(arr[:, 0] * 1e9)).astype(np.int64) - response_latency_ns
    side, price, lots = arr[:, 1], arr[:, 2], arr[:, 3]
    m0 = _mid_at(ts, mids, t)
    for h in horizons_ms:
        mh = _mid_at(ts, mids, t + h * 1_000_000)
        ok = np.isfinite(m0) & np.isfinite(mh) & (t + h * 1_000_000 <= ts[-1])
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
    out.update(adverse_selection(result.fills, bt.core.first_local_ns, lat, ts, mids))
    return out


def trading_effect(
    store: EventStore, cfg: ReplayConfig, signal_on: Signal, grid_ms: float = 10.0
) -> dict[str, Any]:
    """Signal off vs on over the same store and assumptions, with the differences."""
    ts, mids = exchange_mids(store, grid_ms)
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
        "mid_grid_ms": grid_ms,
        "off": off,
        "on": on,
        "on_minus_off": diff,
    }
