"""The report's charts, drawn with matplotlib (Agg) into PNG files beside index.html.

Every chart spans the whole run on the same time axis (minutes from the first sample), with
its legend outside the data area, to the right. Figures are built without pyplot, so writing
a report keeps no global state and frees its figures at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hotpath.report_series import ChartData, Line

WIDTH_IN, HEIGHT_IN, DPI = 11.0, 3.4, 100
BUY, SELL, MARKET, OURS, LIMIT = "tab:green", "tab:red", "tab:gray", "tab:blue", "tab:red"


@dataclass(frozen=True, slots=True)
class Units:
    """Currencies and limits the charts name."""

    base: str
    quote: str
    max_drawdown: float | None = None  # the risk limit, quote currency
    spread_without_us_bps: float | None = None  # the counterfactual's time-weighted touch


def _figure(title: str, ylabel: str, end_min: float) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    fig.subplots_adjust(left=0.075, right=0.78, top=0.88, bottom=0.15)
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_xlabel(f"minutes from the start (0 to {end_min:.1f}, the whole run)")
    ax.set_ylabel(ylabel)
    ax.set_xlim(0.0, max(end_min, 1e-9))
    ax.grid(alpha=0.3)
    return fig, ax


def _legend(ax: Axes, markerscale: float = 1.0) -> None:
    """Outside the data area, to the right of the axes."""
    ax.legend(
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
        fontsize=8,
        markerscale=markerscale,
    )


def _step(ax: Axes, line: Line, **kw: object) -> None:
    ax.plot(line.x, line.y, drawstyle="steps-post", **kw)  # type: ignore[arg-type]


def equity(d: ChartData, u: Units) -> Figure:
    fig, ax = _figure(f"Net PnL ({u.quote}), marked to the mid", u.quote, d.end_min)
    ax.plot(d.equity.x, d.equity.y, lw=1.0, color=OURS, label="net PnL after fees")
    ax.axhline(0, color="black", lw=0.5)
    _legend(ax)
    return fig


def drawdown(d: ChartData, u: Units) -> Figure:
    fig, ax = _figure(f"Drawdown from the running peak ({u.quote})", u.quote, d.end_min)
    ax.fill_between(d.drawdown.x, d.drawdown.y, 0.0, color=SELL, alpha=0.3, lw=0)
    ax.plot(d.drawdown.x, d.drawdown.y, lw=0.8, color=SELL, label="drawdown")
    worst = float(d.drawdown.y.min()) if len(d.drawdown.y) else 0.0
    if u.max_drawdown is not None:
        text = f"risk limit −{u.max_drawdown:,.2f} {u.quote}"
        if worst <= -0.2 * u.max_drawdown:
            ax.axhline(-u.max_drawdown, color=LIMIT, ls="--", lw=1.0, label=text)
        else:  # drawn it would flatten the curve: named, not drawn
            ax.plot(
                [], [], " ", label=f"{text}\n(off the scale: {-worst / u.max_drawdown:.1%} used)"
            )
    _legend(ax)
    return fig


def quotes(d: ChartData, u: Units) -> Figure:
    title = f"Our quotes against the market ({u.quote}), with our fills"
    fig, ax = _figure(title, u.quote, d.end_min)
    thinned = " shown" if d.fills_shown < d.fills else ""
    # few fills: large, outlined, on top of the lines; many: small and see-through, below
    few = d.fills_shown <= 300
    size, alpha, edge, z = (36, 0.9, 0.5, 4) if few else (8, 0.45, 0.0, 2)
    for line, marker, color, verb in ((d.buys, "^", BUY, "bought"), (d.sells, "v", SELL, "sold")):
        ax.scatter(line.x, line.y, s=size, marker=marker, color=color, alpha=alpha,
                   edgecolors="black", linewidths=edge, zorder=z,
                   label=f"we {verb} ({len(line.x):,}{thinned})")  # fmt: skip
    _step(ax, d.market_bid, color="darkgreen", lw=0.8, zorder=3, label="market bid")
    _step(ax, d.market_ask, color="darkred", lw=0.8, zorder=3, label="market ask")
    _step(ax, d.our_bid, color=BUY, lw=0.9, ls="--", zorder=3, label="our bid")
    _step(ax, d.our_ask, color=SELL, lw=0.9, ls="--", zorder=3, label="our ask")
    _legend(ax, 1.0 if few else 2.0)
    return fig


def spread(d: ChartData, u: Units) -> Figure:
    title = f"Spread, ours against the market (bps of the mid; thick: {d.smooth_s:g} s mean)"
    fig, ax = _figure(title, "bps", d.end_min)
    _step(ax, d.market_spread, color=MARKET, lw=0.5, alpha=0.35)
    _step(ax, d.our_spread, color=OURS, lw=0.5, alpha=0.35)
    smooth = d.market_spread_smooth
    ax.plot(smooth.x, smooth.y, color=MARKET, lw=1.4, label="market touch, with us")
    ax.plot(d.our_spread_smooth.x, d.our_spread_smooth.y, color=OURS, lw=1.4, label="our quotes")
    wo = u.spread_without_us_bps
    if wo:
        ax.axhline(
            wo, color="black", ls=":", lw=1.0, label=f"market without us\n(run mean {wo:.2f})"
        )
    ax.set_ylim(bottom=0.0)
    _legend(ax)
    return fig


def inventory(d: ChartData, u: Units) -> Figure:
    fig, ax = _figure(f"Inventory ({u.base}) against the position limit", u.base, d.end_min)
    _step(ax, d.inventory, color="tab:orange", lw=1.0, label="inventory")
    if len(d.limit.y) and bool((d.limit.y == d.limit.y).any()):
        ax.plot(
            d.limit.x,
            d.limit.y,
            color=LIMIT,
            ls="--",
            lw=1.0,
            label="position limit at the mid (±)",
        )
        ax.plot(d.limit.x, -d.limit.y, color=LIMIT, ls="--", lw=1.0)
    ax.axhline(0, color="black", lw=0.5)
    _legend(ax)
    return fig


CHARTS = {
    "equity.png": equity,
    "drawdown.png": drawdown,
    "quotes.png": quotes,
    "spread.png": spread,
    "inventory.png": inventory,
}


def write_charts(d: ChartData, u: Units, out: Path) -> list[str]:
    """Draw every chart into ``out``; returns the file names in report order."""
    for name, draw in CHARTS.items():
        draw(d, u).savefig(out / name, dpi=DPI)
    return list(CHARTS)
