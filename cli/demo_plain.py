"""``flashmm demo``'s plain output (a pipe, CI, ``--plain``): one line per market per
interval, the format scripts and tests read."""

from __future__ import annotations

from typing import Any

from cli.demo_board import MarketView


def plain_line(v: MarketView, elapsed: float) -> str:
    """The one-line status for non-terminals: the hot path's view, then the chain's."""
    open_ = "?" if v.chain_open is None else v.chain_open
    head = f"[{elapsed:6.1f}s] {v.symbol:<9}"
    if v.exit_code is not None:
        return f"{head} DEAD (exit {v.exit_code}), restarting | chain: open {open_}"
    st = v.status
    if not st:
        return f"{head} starting..."
    return (
        f"{head} {st['state']:<8} mkt {v.px(st['best_bid'])}/{v.px(st['best_ask'])} ours "
        f"{v.px(st['our_bid'])}/{v.px(st['our_ask'])} pos {st['position_lots']:+d} rPnL "
        f"{st['realized']:+.3f} uPnL {st['unrealized']:+.3f} fills {st['fills']} cycle p50/p99 "
        f"{st['cycle_p50_us']:.0f}/{st['cycle_p99_us']:.0f}µs{_stores_short(st)} | chain: open "
        f"{open_} {v.asset_denom} {v.balances.get(v.asset_denom, 0) / 1e6:,.2f} "
        f"{v.price_denom} {v.balances.get(v.price_denom, 0) / 1e6:,.2f}"
    )


def _stores_short(st: dict[str, Any]) -> str:
    s = st.get("stores")
    if not s:
        return ""
    flags = "".join(
        ("P" if s["postgres"] else "p", "R" if s["redis"] else "r", "T" if s["timeseries"] else "t")
    )
    return f" stores {flags}" + (f" backlog {s['backlog']}" if s["backlog"] else "")
