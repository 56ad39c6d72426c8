"""Plain names, units and formats for every figure of a backtest or replay summary.

The summaries (``hotpath/summary.py``, ``hotpath/replay_summary.py``, the spread figures of
``hotpath/backtest.py`` and the touch policy's ``figures()``) use short keys; the report
shows each one as a name a person reads, with its unit and a sensible number format. Units
may name the instrument's currencies as ``{quote}`` and ``{base}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# format kinds: how a value is written (the unit column says what it is in)
MONEY = "money"  # quote currency
NUMBER = "number"  # any quantity, written to a sensible precision
LOTS = "lots"  # a lot count, shown in base units (lots × lot size)
INT = "int"
FRACTION = "fraction"  # 0..1, shown as a percentage
PCT = "pct"  # already a percentage, signed (a comparison)
BPS = "bps"
SECONDS = "seconds"
MICROS = "micros"
MINUTES = "minutes"
RATE = "rate"
TEXT = "text"
COUNTS = "counts"  # a dict of reason → count
SECTION = "section"  # shown in a section of its own

GROUPS = (
    "Profit and loss",
    "Trading",
    "Spread",
    "Inventory and risk",
    "Touch policy",
    "Recording",
    "Run",
    "Other",
)


@dataclass(frozen=True, slots=True)
class Label:
    """How one summary figure is shown."""

    name: str
    unit: str
    kind: str
    group: str
    note: str = ""


def _l(name: str, unit: str, kind: str, group: str, note: str = "") -> Label:
    return Label(name, unit, kind, group, note)


_PNL, _TRD, _SPR, _RSK, _POL, _REC, _RUN = GROUPS[:7]

LABELS: dict[str, Label] = {
    # profit and loss
    "pnl_total": _l("Net PnL", "{quote}", MONEY, _PNL, "realised + unrealised − fees"),
    "pnl_realized": _l("Realised PnL", "{quote}", MONEY, _PNL, "before fees"),
    "pnl_unrealized": _l("Unrealised PnL", "{quote}", MONEY, _PNL, "open position at the last mid"),
    "fees": _l("Fees paid", "{quote}", MONEY, _PNL, "negative: rebates received"),
    "max_drawdown": _l("Largest drawdown", "{quote}", MONEY, _PNL, "peak-to-trough net PnL"),
    # trading
    "fills": _l("Fills", "count", INT, _TRD),
    "fills_by_queue": _l("Fills from the queue", "count", INT, _TRD, "queue ahead used up"),
    "fills_by_cross": _l("Fills by a cross", "count", INT, _TRD, "the market traded through us"),
    "volume_base": _l("Volume traded", "{base}", NUMBER, _TRD),
    "volume_quote": _l("Volume traded (notional)", "{quote}", MONEY, _TRD),
    "orders_placed": _l("Orders placed", "count", INT, _TRD),
    "cancels_sent": _l("Cancels sent", "count", INT, _TRD),
    "fill_rate": _l("Fills per order placed", "%", FRACTION, _TRD),
    "order_qty_base": _l("Order size", "{base}", NUMBER, _TRD),
    # spread
    "market_spread_bps_with_us": _l(
        "Market spread, with us", "bps", BPS, _SPR, "time-weighted touch, our orders in the book"
    ),
    "market_spread_bps_without_us": _l(
        "Market spread, without us", "bps", BPS, _SPR, "same seed, our engine off"
    ),
    "spread_improvement_pct": _l(
        "Spread improvement", "%", PCT, _SPR, "how much narrower the market is with us"
    ),
    "our_quoted_spread_bps": _l(
        "Our quoted spread", "bps", BPS, _SPR, "innermost resting bid to ask, time-weighted"
    ),
    "our_quoted_vs_without_us_pct": _l(
        "Our spread vs market without us", "%", PCT, _SPR, "positive: ours is narrower"
    ),
    "our_two_sided_share": _l("Time quoting both sides", "%", FRACTION, _SPR),
    "our_touch_share": _l("Time at the touch on both sides", "%", FRACTION, _SPR),
    "spread_samples": _l("Spread samples", "count", INT, _SPR, "quote-time grid points"),
    "avg_quoted_spread_bps": _l(
        "Our quoted spread, per cycle", "bps", BPS, _SPR, "mean over cycles with both sides"
    ),
    "avg_market_spread_bps": _l(
        "Others' touch spread, per cycle", "bps", BPS, _SPR, "the same cycles, without our orders"
    ),
    "quoted_vs_others_pct": _l(
        "Our spread vs others' touch", "%", PCT, _SPR, "positive: ours is narrower"
    ),
    # inventory and risk
    "inventory_mean_lots": _l("Inventory, mean", "{base}", LOTS, _RSK),
    "inventory_std_lots": _l("Inventory, standard deviation", "{base}", LOTS, _RSK),
    "inventory_min_lots": _l("Inventory, lowest", "{base}", LOTS, _RSK),
    "inventory_max_lots": _l("Inventory, highest", "{base}", LOTS, _RSK),
    "position_base": _l("Final position", "{base}", NUMBER, _RSK),
    "max_position_notional": _l(
        "Largest position (notional)", "{quote}", MONEY, _RSK, "against the position limit"
    ),
    "risk_denials": _l("Orders denied by risk", "count by reason", COUNTS, _RSK),
    "final_state": _l("Final risk state", "—", TEXT, _RSK),
    # recording (replays)
    "symbol": _l("Instrument", "—", TEXT, _REC),
    "data": _l("Event store", "path", TEXT, _REC),
    "data_from_utc": _l("Recording starts", "UTC", TEXT, _REC),
    "data_events": _l("Recorded events replayed", "count", INT, _REC),
    "book_crossed_events": _l("Events with a crossed book", "count", INT, _REC),
    "sequence_gaps": _l("Sequence gaps in the recording", "count", INT, _REC),
    "queue_model": _l("Queue model", "—", TEXT, _REC),
    "latency_ms": _l("Order latency, each way", "ms", NUMBER, _REC),
    "strategy": _l("Quote model", "—", TEXT, _REC),
    "assumptions": _l("Simulation assumptions", "—", SECTION, _REC),
    # the run
    "preset": _l("Market preset", "—", TEXT, _RUN),
    "seed": _l("Random seed", "—", TEXT, _RUN),
    "minutes": _l("Duration", "min", MINUTES, _RUN),
    "cycles": _l("Quote cycles", "count", INT, _RUN),
    "reactive_cycles": _l(
        "Reactive quote cycles", "count", INT, _RUN, "book moved through a quote"
    ),
    "market_events": _l("Market events", "count", INT, _RUN),
    "python_stops": _l("Python stops", "count", INT, _RUN, "times the compiled core returned"),
    "wall_s": _l("Wall time", "s", SECONDS, _RUN),
    "events_per_s": _l("Simulation speed", "events/s", RATE, _RUN),
    "cycle_p50_us": _l("Quote cycle time, median", "µs", MICROS, _RUN),
    "cycle_p99_us": _l("Quote cycle time, 99th percentile", "µs", MICROS, _RUN),
    "report": _l("Report", "path", TEXT, _RUN),
}

# the touch policy's figures are named after its choices and reasons
_POLICY_CHOICES = {
    "improve": "in front of the others' best",
    "join": "at the others' best",
    "behind": "behind the others' best",
    "model": "at the model's price (no touch)",
}
_POLICY_REASONS = {
    "edge": "improved with edge",
    "edge_at_touch": "edge only at the touch",
    "no_edge": "no edge even at the touch",
    "no_room": "no tick to step into",
    "inventory": "inventory too large on this side",
    "no_touch": "others missing on a side",
}


def label_for(key: str) -> Label | None:
    """The label of a summary key, ``None`` where it has none (shown raw, under Other)."""
    found = LABELS.get(key)
    if found is not None:
        return found
    if key.startswith("policy_") and key.endswith("_share"):
        choice = key[len("policy_") : -len("_share")]
        what = _POLICY_CHOICES.get(choice)
        if what is not None:
            return Label(f"Quotes {what}", "% of sides", FRACTION, _POL)
    if key.startswith("policy_reason_"):
        reason = key[len("policy_reason_") :]
        what = _POLICY_REASONS.get(reason)
        if what is not None:
            return Label(f"Policy reason: {what}", "count", INT, _POL)
    return None


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the summary table."""

    key: str
    name: str
    value: str
    unit: str
    note: str
    group: str


def rows(summary: dict[str, Any], base: str, quote: str, lot: float) -> list[Row]:
    """The summary as table rows in group order; figures without a label come last, raw."""
    out: list[Row] = []
    for key, value in summary.items():
        lab = label_for(key)
        if lab is None:
            lab = Label(key, "", TEXT, "Other")
        if lab.kind == SECTION:
            continue
        unit = lab.unit.format(base=base, quote=quote)
        out.append(
            Row(key, lab.name, format_value(lab.kind, value, lot), unit, lab.note, lab.group)
        )
    groups = {g: i for i, g in enumerate(GROUPS)}
    known = {k: i for i, k in enumerate(LABELS)}
    out.sort(key=lambda r: (groups.get(r.group, len(groups)), known.get(r.key, len(known))))
    return out


def number(v: float) -> str:
    """A quantity at a precision that fits its size."""
    if not math.isfinite(v):
        return str(v)
    if v == int(v) and abs(v) < 1e15:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:,.2f}"
    return f"{v:.4g}"


def format_value(kind: str, v: Any, lot: float = 1.0) -> str:
    """One value written for a person; ``None`` is a figure that was not measured."""
    if v is None:
        return "not measured"
    if kind == COUNTS:
        if not v:
            return "none"
        return ", ".join(f"{str(k).replace('_', ' ')}: {c:,}" for k, c in sorted(v.items()))
    if kind == TEXT or isinstance(v, str | bool | dict | list):
        return str(v)
    x = float(v)
    if kind == MONEY:
        return f"{x:,.2f}" if abs(x) >= 10 else f"{x:,.4f}"
    if kind == LOTS:
        return number(x * lot)
    if kind == INT:
        return f"{round(x):,}"
    if kind == FRACTION:
        return f"{x * 100:.1f}"
    if kind == PCT:
        return f"{x:+.1f}"
    if kind == BPS:
        return f"{x:.2f}"
    if kind == SECONDS:
        return f"{x:.3f}"
    if kind in (MICROS, MINUTES):
        return f"{x:.1f}"
    if kind == RATE:
        return f"{x:,.0f}"
    return number(x)
