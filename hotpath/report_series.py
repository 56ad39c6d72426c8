"""The report's chart data: the whole run's sampled paths and fills, in plain units, each
downsampled for size (never truncated) so that a day of samples draws as fast as ten minutes.

Time is in minutes from the first sample. Prices are in the quote currency, inventory in
base units, spreads in basis points of the mid. Downsampling keeps every bucket's lowest and
highest point (and the first and last), so spikes and the run's end stay on the chart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from flashmm.domain.instrument import Instrument
from hotpath.backtest import BacktestResult

MAX_POINTS = 2_000  # per line: about two a pixel at the report's width
MAX_FILLS = 4_000  # fill markers per side; more are thinned evenly, and the chart says so

Floats = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Line:
    """One drawn path: minutes from the start and values."""

    x: Floats
    y: Floats


@dataclass(frozen=True, slots=True)
class ChartData:
    """Everything the report's charts draw."""

    end_min: float  # the run's last sample, minutes from the first
    samples: int  # sampled points before downsampling
    sample_s: float  # seconds between samples
    equity: Line
    drawdown: Line
    market_bid: Line
    market_ask: Line
    our_bid: Line
    our_ask: Line
    market_spread: Line  # touch (our orders included), bps
    our_spread: Line  # our quoted bid to ask, bps
    market_spread_smooth: Line
    our_spread_smooth: Line
    smooth_s: float  # the rolling mean's window
    inventory: Line  # base units
    limit: Line  # the position limit at the mid, base units (draw ± it)
    buys: Line  # fill markers: minutes, price
    sells: Line
    fills: int  # fills in the run
    fills_shown: int  # markers drawn (fewer only when thinned)

    def lines(self) -> dict[str, Line]:
        """The sampled paths by name (fills excluded)."""
        return {
            name: getattr(self, name)
            for name in (
                "equity",
                "drawdown",
                "market_bid",
                "market_ask",
                "our_bid",
                "our_ask",
                "market_spread",
                "our_spread",
                "market_spread_smooth",
                "our_spread_smooth",
                "inventory",
                "limit",
            )
        }


def chart_data(
    result: BacktestResult, instrument: Instrument, position_limit: float | None = None
) -> ChartData:
    """The run's chart data, from its first sample to its last; ``position_limit`` (the
    risk limit's notional, quote currency) becomes base units at each sample's mid."""
    s = result.series
    tick = instrument.tick
    t = np.asarray(s.t, dtype=np.float64)
    t0 = float(t[0]) if len(t) else 0.0
    x = (t - t0) / 60.0
    n = len(t)
    sample_s = float(np.median(np.diff(t))) if n > 1 else 1.0

    equity = np.asarray(s.equity, dtype=np.float64)
    drawdown = equity - np.maximum.accumulate(equity) if n else equity
    bb, ba = _ticks(s.best_bid), _ticks(s.best_ask)
    ob, oa = _ticks(s.our_bid), _ticks(s.our_ask)
    mid_px = np.asarray(s.mid, dtype=np.float64) * tick
    mid_px[mid_px <= 0] = np.nan
    market_spread = _spread_bps(bb, ba)
    our_spread = _spread_bps(ob, oa)
    window = max(1, round(n / 60))
    inventory = np.asarray(s.position, dtype=np.float64) * instrument.lot
    limit = np.full(n, np.nan) if position_limit is None else position_limit / mid_px

    buys, sells, shown = _fills(result.fills, t0, tick)
    return ChartData(
        end_min=float(x[-1]) if n else 0.0,
        samples=n,
        sample_s=sample_s,
        equity=_line(x, equity),
        drawdown=_line(x, drawdown),
        market_bid=_line(x, bb * tick),
        market_ask=_line(x, ba * tick),
        our_bid=_line(x, ob * tick),
        our_ask=_line(x, oa * tick),
        market_spread=_line(x, market_spread),
        our_spread=_line(x, our_spread),
        market_spread_smooth=_line(x, rolling_mean(market_spread, window)),
        our_spread_smooth=_line(x, rolling_mean(our_spread, window)),
        smooth_s=window * sample_s,
        inventory=_line(x, inventory),
        limit=_line(x, limit),
        buys=buys,
        sells=sells,
        fills=len(result.fills),
        fills_shown=shown,
    )


def _ticks(vals: list[int]) -> Floats:
    a = np.asarray(vals, dtype=np.float64)
    a[a == 0] = np.nan  # no quote / empty side: a gap, not a price of zero
    return a


def _spread_bps(bid: Floats, ask: Floats) -> Floats:
    with np.errstate(invalid="ignore"):
        out: Floats = (ask - bid) / ((ask + bid) * 0.5) * 1e4
    return out


def rolling_mean(y: Floats, window: int) -> Floats:
    """Trailing mean over ``window`` samples, skipping gaps (NaN where all are gaps)."""
    if window <= 1 or len(y) == 0:
        return y.copy()
    ok = np.isfinite(y)
    vals = np.concatenate(([0.0], np.cumsum(np.where(ok, y, 0.0))))
    cnt = np.concatenate(([0], np.cumsum(ok)))
    idx = np.arange(1, len(y) + 1)
    lo = np.maximum(idx - window, 0)
    n = cnt[idx] - cnt[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        out: Floats = np.where(n > 0, (vals[idx] - vals[lo]) / n, np.nan)
    return out


def downsample_idx(y: Floats, max_points: int = MAX_POINTS) -> NDArray[np.intp]:
    """Indices keeping each bucket's lowest and highest point, the first and the last."""
    n = len(y)
    if n <= max_points:
        return np.arange(n)
    buckets = max_points // 2
    size = -(-n // buckets)
    pad = buckets * size - n
    lo = np.concatenate((np.where(np.isnan(y), np.inf, y), np.full(pad, np.inf)))
    hi = np.concatenate((np.where(np.isnan(y), -np.inf, y), np.full(pad, -np.inf)))
    base = np.arange(buckets) * size
    imin = base + lo.reshape(buckets, size).argmin(axis=1)
    imax = base + hi.reshape(buckets, size).argmax(axis=1)
    idx = np.unique(np.concatenate((imin, imax, [0, n - 1])))
    return idx[idx < n]


def _line(x: Floats, y: Floats) -> Line:
    idx = downsample_idx(y)
    return Line(x[idx], y[idx])


def _fills(
    fills: list[tuple[float, int, int, int]], t0: float, tick: float
) -> tuple[Line, Line, int]:
    if not fills:
        empty = np.zeros(0)
        return Line(empty, empty), Line(empty, empty), 0
    a = np.asarray([(t, side, price) for t, side, price, _ in fills], dtype=np.float64)
    out = []
    shown = 0
    for mask in (a[:, 1] > 0, a[:, 1] < 0):
        part = a[mask]
        if len(part) > MAX_FILLS:
            part = part[np.linspace(0, len(part) - 1, MAX_FILLS).round().astype(np.intp)]
        shown += len(part)
        out.append(Line((part[:, 0] - t0) / 60.0, part[:, 2] * tick))
    return out[0], out[1], shown
