"""The panels of ``flashmm demo``'s dashboard, rendered from a :class:`~cli.demo_board.Board`
with ``rich``: one per market (trading state, the book's top, our quotes, position against
its limit, PnL, fills, cycle latency, the model signal), the chain (our open orders and
balances), the control plane (recent workflow executions), the alerts, and the log's tail.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from cli.demo_board import Board, MarketView

STATE_STYLE = {
    "active": "green",
    "trading": "green",
    "reducing": "yellow",
    "halted": "bold red",
    "stopped": "dim",
}
WORKFLOW_STYLE = {
    "RUNNING": "cyan",
    "COMPLETED": "green",
    "FAILED": "bold red",
    "TERMINATED": "red",
    "TIMED_OUT": "red",
    "CANCELED": "yellow",
    "CONTINUED_AS_NEW": "dim",
}


def render(board: Board) -> RenderableType:
    """One frame: header, the market panels side by side, then chain / control plane /
    alerts, then the log's tail."""
    parts: list[RenderableType] = [_header(board)]
    per_row = 3 if len(board.markets) > 4 else max(1, min(len(board.markets), 2))
    for i in range(0, len(board.markets), per_row):
        row = Table.grid(expand=True, padding=(0, 1))
        chunk = board.markets[i : i + per_row]
        for _ in range(per_row):
            row.add_column(ratio=1)
        cells: list[RenderableType] = [market_panel(v) for v in chunk]
        cells += [Text("")] * (per_row - len(chunk))
        row.add_row(*cells)
        parts.append(row)
    parts.append(chain_panel(board))
    lower = Table.grid(expand=True, padding=(0, 1))
    lower.add_column(ratio=3)
    lower.add_column(ratio=2)
    lower.add_row(workflows_panel(board), alerts_panel(board))
    parts.append(lower)
    if board.log_tail or "log" in board.links:
        parts.append(log_panel(board))
    return Group(*parts)


def _header(board: Board) -> RenderableType:
    t = Text()
    t.append("flashmm demo", style="bold")
    t.append(f"  {board.elapsed:,.0f} s  Ctrl-C stops everything in order", style="dim")
    for name, url in board.links.items():
        t.append(f"\n  {name}: ", style="dim")
        t.append(url)
    return t


def market_panel(v: MarketView) -> Panel:
    st = v.status
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()
    state = str(st.get("state", "?"))
    style = STATE_STYLE.get(state, "")
    if v.exit_code is not None:
        grid.add_row("state", Text(f"DEAD (exit {v.exit_code}), restarting", style="bold red"))
        style = "red"
    elif not st:
        grid.add_row("state", Text("starting...", style="dim"))
    else:
        label = Text(state, style=style)
        if v.restarts:
            label.append(f"  (restarted {v.restarts}x)", style="yellow")
        grid.add_row("state", label)
    if st:
        _market_rows(grid, v, st)
    return Panel(grid, title=f"[bold]{v.symbol}[/]", border_style=style or "blue", box=box.ROUNDED)


def _market_rows(grid: Table, v: MarketView, st: dict[str, Any]) -> None:
    bid, ask = st.get("best_bid", 0), st.get("best_ask", 0)
    n = ask - bid
    spread = f"  spread {n} tick{'s' if n != 1 else ''}" if bid and ask else ""
    grid.add_row("market", f"{v.px(bid)} / {v.px(ask)}{spread}")
    ours = (
        f"{v.px(st.get('our_bid'))} / {v.px(st.get('our_ask'))}"
        if st.get("our_bid") or st.get("our_ask")
        else Text("not quoting", style="dim")
    )
    grid.add_row("our quotes", ours)
    grid.add_row("position", position_text(v, st))
    grid.add_row("PnL", pnl_text(v, st))
    grid.add_row("fills", f"{st.get('fills', 0):,}")
    cycle = Text(
        f"p50 {st.get('cycle_p50_us', 0):,.0f} µs  p99 {st.get('cycle_p99_us', 0):,.0f} µs"
    )
    age = st.get("last_cycle_age_s")
    if age is not None:
        cycle.append(f"  last {age * 1000:,.0f} ms ago", style="red" if age > 2 else "dim")
    grid.add_row("cycle", cycle)
    grid.add_row("signal", model_text(st))
    if v.model:
        grid.add_row("model", breaker_text(v.model))
    stores = st.get("stores")
    if stores:
        grid.add_row("stores", stores_text(stores))


def position_text(v: MarketView, st: dict[str, Any]) -> Text:
    """Lots, their notional at the mid and the share of the position limit used."""
    lots = int(st.get("position_lots", 0))
    bid, ask = st.get("best_bid", 0), st.get("best_ask", 0)
    t = Text(f"{lots:+,d} lots")
    if not (bid and ask and v.position_limit):
        return t
    notional = abs(lots) * (bid + ask) / 2 * float(v.tick * v.lot)
    use = notional / v.position_limit
    style = "bold red" if use >= 0.9 else ("yellow" if use >= 0.6 else "green")
    t.append(f"  {notional:,.2f} of {v.position_limit:,.0f} {v.quote} limit ")
    t.append(f"({use:.0%})", style=style)
    return t


def pnl_text(v: MarketView, st: dict[str, Any]) -> Text:
    realized, unrealized = float(st.get("realized", 0.0)), float(st.get("unrealized", 0.0))
    fees = float(st.get("fees", 0.0))
    net = realized + unrealized - fees
    t = Text(f"{net:+,.3f} {v.quote}", style="green" if net >= 0 else "red")
    paid = f"fees {-fees:+,.3f}" if fees > 0 else f"rebates {-fees:+,.3f}"
    t.append(f"  (realized {realized:+,.3f}, unrealized {unrealized:+,.3f}, {paid})", style="dim")
    return t


def model_text(st: dict[str, Any]) -> Text:
    """The model signal: direction and confidence of the latest result, the share of cycles
    quoted on a fresh result and its age (the signal is computed off the quote cycle)."""
    fig = st.get("model")
    if not fig:
        return Text("off (no model configured)", style="dim")
    t = Text()
    sig = st.get("signal") or (0.0, 0.0)
    direction, confidence = float(sig[0]), float(sig[1])
    word = "up" if direction > 0 else ("down" if direction < 0 else "flat")
    t.append(f"{word} {direction:+.2f} (confidence {confidence:.2f})")
    share = fig.get("live_share")
    if share is None:
        t.append("  warming up", style="yellow")
    else:
        t.append(f"  fresh {share:.0%} of cycles", style="green" if share >= 0.9 else "yellow")
    t.append(f"  age p99 {fig.get('age_p99_ms', 0.0):,.1f} ms", style="dim")
    if fig.get("stale_cycles"):
        t.append(f"  stale {fig['stale_cycles']:,}", style="yellow")
    return t


def breaker_text(sig: dict[str, Any]) -> Text:
    """The model's version, its last inference time and its circuit breaker's trips (from
    the hot path's control API; a trip makes the cycle fall back for a cool-down)."""
    t = Text(str(sig.get("model") or "none loaded"))
    if sig.get("latency_us"):
        t.append(f"  inference {sig['latency_us']:,.0f} µs", style="dim")
    trips = int(sig.get("trips") or 0)
    if not trips:
        t.append("  breaker never tripped", style="green")
    else:
        t.append(f"  breaker tripped {trips}x", style="yellow")
        if sig.get("breaker_reason"):
            t.append(f" (last: {sig['breaker_reason']})", style="dim")
    return t


def stores_text(s: dict[str, Any]) -> Text:
    t = Text()
    for i, name in enumerate(("postgres", "redis", "timeseries")):
        t.append(("  " if i else "") + f"{name} ")
        t.append("up" if s.get(name) else "down", style="green" if s.get(name) else "red")
    if s.get("backlog"):
        t.append(f"  {s['backlog']:,} rows waiting to be written", style="yellow")
    return t


def chain_panel(board: Board) -> Panel:
    t = Table(box=box.SIMPLE_HEAD, expand=True, padding=(0, 1), show_edge=False)
    t.add_column("market")
    t.add_column("our open orders", justify="right")
    t.add_column("balance", justify="right")
    t.add_column("balance", justify="right")
    for v in board.markets:
        n = v.chain_open
        shown = (
            Text("?", style="dim")
            if n is None
            else Text("no answer", style="red")
            if n < 0
            else Text(str(n))
        )
        t.add_row(
            v.symbol,
            shown,
            f"{v.balances.get(v.asset_denom, 0) / 1e6:,.2f} {v.asset_denom}",
            f"{v.balances.get(v.price_denom, 0) / 1e6:,.2f} {v.price_denom}",
        )
    return Panel(t, title="chain (localnet)", border_style="blue", box=box.ROUNDED)


def workflows_panel(board: Board) -> Panel:
    title = "control plane: recent workflows (Temporal)"
    if board.workflows is None:
        body: RenderableType = Text(board.workflows_note or "listing...", style="dim")
        return Panel(body, title=title, border_style="blue", box=box.ROUNDED)
    t = Table(box=box.SIMPLE_HEAD, expand=True, padding=(0, 1), show_edge=False)
    t.add_column("workflow")
    t.add_column("id", overflow="ellipsis", no_wrap=True)
    t.add_column("status")
    t.add_column("started", justify="right")
    now = board.now or datetime.now(UTC)
    for w in board.workflows:
        t.add_row(
            w.workflow_type,
            w.workflow_id,
            Text(w.status, style=WORKFLOW_STYLE.get(w.status, "")),
            _ago(now, w.started),
        )
    if not board.workflows:
        t.add_row(Text("none yet", style="dim"), "", "", "")
    body = Group(t, Text(board.workflows_note, style="dim")) if board.workflows_note else t
    return Panel(body, title=title, border_style="blue", box=box.ROUNDED)


def alerts_panel(board: Board) -> Panel:
    title = "alerts (Prometheus)"
    if board.alerts is None:
        body = Text(board.alerts_note or "no answer from Prometheus yet", style="dim")
        return Panel(body, title=title, border_style="blue", box=box.ROUNDED)
    shown = sorted(board.alerts, key=lambda a: (a.get("state") != "firing", _alert_name(a)))
    if not shown:
        body = Text("none pending or firing", style="green")
        return Panel(body, title=title, border_style="green", box=box.ROUNDED)
    t = Table(box=box.SIMPLE_HEAD, expand=True, padding=(0, 1), show_edge=False)
    t.add_column("alert")
    t.add_column("where")
    t.add_column("state")
    t.add_column("since", justify="right")
    now = board.now or datetime.now(UTC)
    for a in shown:
        labels = a.get("labels", {})
        state = str(a.get("state", "?"))
        t.add_row(
            Text(_alert_name(a), style="bold" if state == "firing" else ""),
            _where(labels),
            Text(state, style="bold red" if state == "firing" else "yellow"),
            _ago(now, _when(a.get("activeAt"))),
        )
    firing = any(a.get("state") == "firing" for a in shown)
    return Panel(t, title=title, border_style="red" if firing else "yellow", box=box.ROUNDED)


def log_panel(board: Board) -> Panel:
    body = Text("\n".join(board.log_tail) if board.log_tail else "(empty)", style="dim")
    body.no_wrap = True
    body.overflow = "ellipsis"
    return Panel(
        body, title=f"log {board.links.get('log', '')}".strip(), border_style="dim", box=box.ROUNDED
    )


def _where(labels: dict[str, str]) -> str:
    """The market (or job) an alert is about, and any label that tells its series apart
    (e.g. the model's horizon)."""
    common = {"alertname", "market", "job", "instance", "severity", "system", "state"}
    extra = [f"{k} {v}" for k, v in sorted(labels.items()) if k not in common]
    return " ".join([labels.get("market") or labels.get("job") or "", *extra]).strip()


def _alert_name(a: dict[str, Any]) -> str:
    return str(a.get("labels", {}).get("alertname", "?"))


def _when(stamp: Any) -> datetime | None:
    if not isinstance(stamp, str):
        return None
    with contextlib.suppress(ValueError):
        head = stamp.rstrip("Z").split(".")[0]  # nanoseconds: fromisoformat balks
        return datetime.fromisoformat(head).replace(tzinfo=UTC)
    return None


def _ago(now: datetime, then: datetime | None) -> str:
    if then is None:
        return ""
    s = max(0.0, (now - then).total_seconds())
    if s < 120:
        return f"{s:.0f} s ago"
    if s < 7200:
        return f"{s / 60:.0f} min ago"
    return f"{s / 3600:.1f} h ago"
