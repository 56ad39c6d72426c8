"""Backtest report: summary JSON, PNG plots (equity, inventory, quotes vs market) and an
index.html a person can open.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from flashmm.domain.instrument import Instrument
from hotpath.backtest import BacktestConfig, BacktestResult

if TYPE_CHECKING:
    from hotpath.replay import ReplayConfig


def write_report(result: BacktestResult, cfg: BacktestConfig, out: Path) -> Path:
    """Write a generated-market backtest's report into ``out``; returns index.html's path."""
    title = f"{cfg.instrument.symbol}: {cfg.minutes:g} minutes, seed {cfg.market.seed}"
    params = {
        "market": cfg.market.as_dict(),
        "quoting": cfg.quoting.as_dict(),
        "risk": cfg.limits.as_dict(),
    }
    return _write(result, cfg.instrument, title, params, "", out)


def write_replay_report(
    result: BacktestResult, instrument: Instrument, cfg: ReplayConfig, out: Path
) -> Path:
    """Write a replay's report: the same plots, with the simulation assumptions stated."""
    s = result.summary
    title = f"{instrument.symbol}: {s['minutes']:.1f} recorded minutes from {s['data_from_utc']}"
    note = (
        "Replay of recorded real data. Our orders and fills never change the recorded book "
        "(no market impact); fills are never partial. Assumptions: "
        + "; ".join(f"{k} = {v}" for k, v in cfg.assumptions().items())
    )
    params = {"quoting": cfg.quoting.as_dict(), "risk": cfg.limits.as_dict()}
    return _write(result, instrument, title, params, note, out)


def _write(
    result: BacktestResult,
    instrument: Instrument,
    title_text: str,
    param_dict: dict[str, Any],
    note: str,
    out: Path,
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    s = result.series
    tick = instrument.tick
    minutes = [(t - s.t[0]) / 60 for t in s.t] if s.t else []

    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.plot(minutes, s.equity, lw=1.0)
    ax.set(title=f"Equity (net PnL, {instrument.quote})", xlabel="minutes", ylabel=instrument.quote)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "equity.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.plot(minutes, [p * instrument.lot for p in s.position], lw=1.0, color="tab:orange")
    ax.axhline(0, color="black", lw=0.5)
    ax.set(title=f"Inventory ({instrument.base})", xlabel="minutes")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "inventory.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 4))
    n = min(len(minutes), 300)  # the last few minutes, readable
    sl = slice(len(minutes) - n, len(minutes))

    def px(vals: list[int]) -> list[float]:
        return [v * tick if v else float("nan") for v in vals[sl]]

    ax.step(
        minutes[sl], px(s.best_bid), where="post", color="tab:green", lw=0.8, label="market bid"
    )
    ax.step(minutes[sl], px(s.best_ask), where="post", color="tab:red", lw=0.8, label="market ask")
    ax.step(minutes[sl], px(s.our_bid), where="post", color="green", ls="--", lw=1, label="our bid")
    ax.step(minutes[sl], px(s.our_ask), where="post", color="red", ls="--", lw=1, label="our ask")
    ax.set(title="Our quotes against the market", xlabel="minutes", ylabel=instrument.quote)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "quotes.png", dpi=110)
    plt.close(fig)

    (out / "summary.json").write_text(json.dumps(result.summary, indent=2, sort_keys=True))
    rows = "\n".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(_fmt(v))}</td></tr>"
        for k, v in result.summary.items()
    )
    params = html.escape(json.dumps(param_dict, indent=2))
    title = html.escape(title_text)
    note_html = f"<p>{html.escape(note)}</p>" if note else ""
    index = out / "index.html"
    index.write_text(f"""<!doctype html><html><head><meta charset="utf-8">
<title>FlashMM backtest {title}</title>
<style>body{{font-family:sans-serif;margin:2em}}td{{padding:2px 12px}}</style></head><body>
<h1>Backtest {title}</h1>{note_html}
<table>{rows}</table>
<h2>Equity</h2><img src="equity.png"><h2>Inventory</h2><img src="inventory.png">
<h2>Quotes</h2><img src="quotes.png"><h2>Parameters</h2><pre>{params}</pre>
</body></html>
""")
    return index


def _fmt(v: object) -> str:
    return f"{v:,.4f}" if isinstance(v, float) else str(v)
