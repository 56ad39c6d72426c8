"""Backtest report: summary.json, PNG charts and an index.html a person can open offline.

``write_report`` is for ``flashmm backtest`` (a generated market), ``write_replay_report``
for ``flashmm backtest --data`` (a replayed recording). The page shows every summary figure
under a plain name with its unit (``hotpath/report_labels.py``), charts over the whole run
with our fills marked (``hotpath/report_series.py``, ``hotpath/report_charts.py``), the
run's assumptions and the parameters it used (``hotpath/report_run.py``). No network assets:
the charts are PNG files beside index.html.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flashmm.domain.instrument import Instrument
from hotpath.backtest import BacktestConfig, BacktestResult
from hotpath.report_charts import Units, write_charts
from hotpath.report_labels import rows
from hotpath.report_run import (
    Assumption,
    Param,
    backtest_assumptions,
    backtest_params,
    preset_of,
    replay_assumptions,
    replay_params,
)
from hotpath.report_series import MAX_POINTS, ChartData, chart_data

if TYPE_CHECKING:
    from hotpath.replay import ReplayConfig


def write_report(
    result: BacktestResult, cfg: BacktestConfig, out: Path, preset: str | None = None
) -> Path:
    """Write a generated-market backtest's report into ``out``; returns index.html's path.
    ``preset``: the market preset's name where the caller knows it (else the closest one)."""
    name = preset or preset_of(cfg.market)[0]
    title = (
        f"{cfg.instrument.symbol}: {cfg.minutes:g} simulated minutes, seed {cfg.market.seed}, "
        f"preset {name}"
    )
    s = result.summary
    units = Units(
        cfg.instrument.base,
        cfg.instrument.quote,
        max_drawdown=cfg.limits.max_drawdown,
        spread_without_us_bps=s.get("market_spread_bps_without_us"),
    )
    return _write(
        result,
        cfg.instrument,
        title,
        "",
        backtest_assumptions(cfg, preset),
        backtest_params(cfg),
        units,
        cfg.limits.max_position_notional,
        out,
    )


def write_replay_report(
    result: BacktestResult, instrument: Instrument, cfg: ReplayConfig, out: Path
) -> Path:
    """Write a replay's report: the same charts, with the simulation assumptions stated."""
    s = result.summary
    title = f"{instrument.symbol}: {s['minutes']:.1f} recorded minutes from {s['data_from_utc']}"
    note = (
        "Replay of recorded real data. Our orders and fills never change the recorded book "
        "(no market impact); fills are never partial."
    )
    units = Units(instrument.base, instrument.quote, max_drawdown=cfg.limits.max_drawdown)
    return _write(
        result,
        instrument,
        title,
        note,
        replay_assumptions(cfg, instrument, s),
        replay_params(cfg, instrument),
        units,
        cfg.limits.max_position_notional,
        out,
    )


def _write(
    result: BacktestResult,
    inst: Instrument,
    title: str,
    note: str,
    assumptions: list[Assumption],
    params: dict[str, list[Param]],
    units: Units,
    position_limit: float,
    out: Path,
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    data = chart_data(result, inst, position_limit)
    charts = write_charts(data, units, out)
    (out / "summary.json").write_text(json.dumps(result.summary, indent=2, sort_keys=True))
    body = [
        f"<h1>Backtest {escape(title)}</h1>",
        f'<p class="note">{escape(note)}</p>' if note else "",
        _headline(result.summary, inst),
        '<nav><a href="#summary">Figures</a> · <a href="#charts">Charts</a> · '
        '<a href="#assumptions">Assumptions</a> · <a href="#parameters">Parameters</a></nav>',
        '<h2 id="summary">Figures</h2>',
        _summary_table(result.summary, inst),
        '<h2 id="charts">Charts</h2>',
        f"<p>{escape(_span_text(data))}</p>",
        *(_chart(name, data) for name in charts),
        '<h2 id="assumptions">Assumptions</h2>',
        _assumptions_table(assumptions),
        '<h2 id="parameters">Parameters used</h2>',
        *(_params_table(group, ps) for group, ps in params.items()),
        '<p class="muted">Every figure is in summary.json under its key (hover a name to '
        "see it).</p>",
    ]
    index = out / "index.html"
    index.write_text(
        f"""<!doctype html><html><head><meta charset="utf-8">
<title>FlashMM backtest {escape(title)}</title>
<style>{_CSS}</style></head><body>
{chr(10).join(b for b in body if b)}
</body></html>
"""
    )
    return index


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1150px;color:#222}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
    "td,th{padding:3px 12px;text-align:left;vertical-align:top}"
    "th{border-bottom:1px solid #999}td.v{text-align:right;font-variant-numeric:tabular-nums}"
    "tr.g td{font-weight:bold;padding-top:10px;border-bottom:1px solid #ddd}"
    ".muted,td.n{color:#666;font-size:90%}code{font-size:90%}"
    "figure{margin:1em 0}figcaption{color:#444;font-size:90%;max-width:1000px}"
    "img{max-width:100%}.note{background:#fff6dd;padding:6px 10px}"
)


def _headline(s: dict[str, Any], inst: Instrument) -> str:
    parts = []
    if "pnl_total" in s:
        parts.append(f"net PnL {s['pnl_total']:,.2f} {inst.quote}")
    if "fills" in s:
        parts.append(f"{s['fills']:,} fills")
    if s.get("spread_improvement_pct") is not None:
        parts.append(f"market spread {s['spread_improvement_pct']:+.1f}% narrower with us")
    if "max_drawdown" in s:
        parts.append(f"largest drawdown {s['max_drawdown']:,.2f} {inst.quote}")
    return f"<p><b>{escape('; '.join(parts))}</b></p>" if parts else ""


def _summary_table(s: dict[str, Any], inst: Instrument) -> str:
    lines = ["<table><tr><th>Figure</th><th>Value</th><th>Unit</th><th>Meaning</th></tr>"]
    group = None
    for r in rows(s, inst.base, inst.quote, inst.lot):
        if r.group != group:
            group = r.group
            lines.append(f'<tr class="g"><td colspan="4">{escape(group)}</td></tr>')
        lines.append(
            f'<tr><td title="{escape(r.key)}">{escape(r.name)}</td>'
            f'<td class="v">{escape(r.value)}</td><td>{escape(r.unit)}</td>'
            f'<td class="n">{escape(r.note)}</td></tr>'
        )
    lines.append("</table>")
    return "\n".join(lines)


def _span_text(d: ChartData) -> str:
    return (
        f"Every chart covers the whole run: minute 0.0 to {d.end_min:.1f}, {d.samples:,} "
        f"samples every {d.sample_s:g} s (long runs are drawn with at most {MAX_POINTS:,} "
        "points per line, keeping each stretch's highs and lows)."
    )


_CAPTIONS = {
    "equity.png": "Net PnL after fees, the open position marked to the mid.",
    "drawdown.png": "How far net PnL is below its running peak; the risk engine turns "
    "reduce-only at the drawdown limit.",
    "quotes.png": "The market's best bid and ask (solid) and our innermost quotes (dashed); "
    "▲ marks a buy fill, ▼ a sell fill, at the fill price.",
    "spread.png": "Touch spread (our orders included) and our own quoted bid-to-ask, in bps "
    "of the mid: thin lines per sample, thick lines a rolling mean.",
    "inventory.png": "Our position in base units; dashed, the position limit (a notional "
    "cap) in base units at the mid.",
}


def _chart(name: str, d: ChartData) -> str:
    cap = _CAPTIONS.get(name, "")
    if name == "quotes.png":
        buys, sells = len(d.buys.x), len(d.sells.x)
        cap += f" {d.fills:,} fills in the run, {buys:,} buys and {sells:,} sells marked"
        cap += f" (thinned evenly from {d.fills:,})." if d.fills_shown < d.fills else "."
    return (
        f'<figure><img src="{name}" alt="{escape(cap)}">'
        f"<figcaption>{escape(cap)}</figcaption></figure>"
    )


def _assumptions_table(items: list[Assumption]) -> str:
    lines = ["<table><tr><th>Assumption</th><th>What was assumed</th><th>Setting</th></tr>"]
    for a in items:
        lines.append(
            f"<tr><td>{escape(a.name)}</td><td>{escape(a.value)}</td>"
            f"<td><code>{escape(a.setting)}</code></td></tr>"
        )
    lines.append("</table>")
    return "\n".join(lines)


def _params_table(group: str, params: list[Param]) -> str:
    lines = [
        f"<h3>{escape(group)}</h3>",
        "<table><tr><th>Setting</th><th>Value</th><th>Unit</th></tr>",
    ]
    for p in params:
        lines.append(
            f"<tr><td><code>{escape(p.key)}</code></td><td>{escape(p.value)}</td>"
            f"<td>{escape(p.unit)}</td></tr>"
        )
    lines.append("</table>")
    return "\n".join(lines)
