"""What ``flashmm demo`` shows while it runs.

On a terminal: a dashboard that redraws in place (``rich`` Live) with one panel per market
(trading state, the book's top, our quotes, position against its limit, PnL, fills, cycle
latency, the model signal), one for the chain (our open orders and balances per market), one
for the control plane (the latest workflow executions in Temporal), one for the alerts that
the demo's Prometheus has pending or firing, and the tail of the run's log file (the
children's stderr goes there, so a warning never breaks the screen).

Elsewhere (a pipe, CI, ``--plain``): one line per market per interval, as before.

Everything here renders from plain data (:class:`Board`), so it is tested without processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import aiohttp
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

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


@dataclass
class MarketView:
    """One market: its hot path's latest status line and what the chain holds for it."""

    symbol: str
    status: dict[str, Any]  # the hot path's latest JSON status ({} before the first)
    exit_code: int | None = None  # the process died (the demo restarts it)
    restarts: int = 0
    chain_open: int | None = None  # our orders on the chain (-1: the chain did not answer)
    balances: dict[str, int] = field(default_factory=dict)  # denom -> micro-units
    price_denom: str = "uusdc"
    asset_denom: str = "usei"
    tick: Decimal = Decimal("0.0001")
    lot: Decimal = Decimal("1")
    position_limit: float = 0.0  # risk.max_position_notional, in the quote currency
    model: dict[str, Any] | None = None  # the control API's "signal" (version, breaker...)

    @property
    def quote(self) -> str:
        return self.symbol.partition("/")[2]

    def px(self, ticks: int | None) -> str:
        return f"{ticks * self.tick:.4f}" if ticks else "-"


@dataclass
class WorkflowView:
    """One workflow execution as the control-plane panel lists it."""

    workflow_type: str
    workflow_id: str
    status: str  # RUNNING, COMPLETED, ...
    started: datetime | None = None


@dataclass
class Board:
    """Everything one frame of the dashboard shows."""

    elapsed: float
    markets: list[MarketView]
    links: dict[str, str] = field(default_factory=dict)  # header: name -> URL or path
    workflows: list[WorkflowView] | None = None  # None: not listed yet
    workflows_note: str = ""  # why the list is missing or old
    alerts: list[dict[str, Any]] | None = None  # Prometheus /api/v1/alerts; None: no answer
    alerts_note: str = ""  # e.g. "prometheus is not installed"
    log_tail: list[str] = field(default_factory=list)
    now: datetime | None = None  # for "started 12 s ago" (tests fix it)


# --- plain output -------------------------------------------------------------------------
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


# --- the dashboard ------------------------------------------------------------------------
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


# --- sources ------------------------------------------------------------------------------
async def recent_workflows(client: Any, n: int = 6) -> list[WorkflowView]:
    """The ``n`` latest workflow executions (newest first) from a Temporal client."""
    found: list[WorkflowView] = []
    async for wf in client.list_workflows(limit=max(n * 4, 20), page_size=100):
        status = getattr(wf.status, "name", None) or str(wf.status or "?")
        found.append(WorkflowView(wf.workflow_type, wf.id, status, wf.start_time))
    found.sort(key=lambda w: w.started or datetime.min.replace(tzinfo=UTC), reverse=True)
    return found[:n]


def log_tail(path: Path, n: int = 4, width: int = 200) -> list[str]:
    """The last ``n`` non-blank lines of a log file (cheap: reads its last 16 KiB)."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 16384))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [ln[:width] for ln in data.splitlines() if ln.strip()][-n:]


@contextlib.contextmanager
def stderr_to(path: Path) -> Iterator[None]:
    """Send this process's stderr (file descriptor 2, inherited by the children it starts
    from now on) to ``path``; restored on the way out."""
    sys.stderr.flush()
    saved = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.dup2(fd, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)


class Screen:
    """The dashboard on a terminal: ``with Screen() as s: s.show(board)``."""

    def __init__(self, file: IO[str] | None = None) -> None:
        self.console = Console(file=file or sys.stdout)
        # stderr is left alone: it goes to the log file, never over the screen
        self.live = Live(
            console=self.console,
            auto_refresh=False,
            redirect_stdout=True,
            redirect_stderr=False,
            vertical_overflow="crop",
        )

    def __enter__(self) -> Screen:
        self.live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.live.stop()

    def show(self, board: Board) -> None:
        self.live.update(render(board), refresh=True)


class Feeds:
    """The slower sources of the dashboard, refreshed in the background every ``every_s``
    (so a slow answer never holds up the screen): Temporal's recent workflows and the
    Prometheus alerts. ``prometheus`` is a started ``demo_prometheus.Prometheus`` or None."""

    def __init__(
        self,
        temporal_address: str,
        prometheus: Any,
        hotpaths: dict[str, str] | None = None,
        token: str = "",
        every_s: float = 5.0,
    ) -> None:
        self.address = temporal_address
        self.prometheus = prometheus
        self.hotpaths = hotpaths or {}  # symbol -> control API URL
        self.token = token
        self.models: dict[str, dict[str, Any]] = {}  # symbol -> the control API's "signal"
        self.every_s = every_s
        self.workflows: list[WorkflowView] | None = None
        self.workflows_note = ""
        self.alerts: list[dict[str, Any]] | None = None
        self.alerts_note = "" if prometheus is not None else "Prometheus is not running"

    async def run(self) -> None:
        """Until cancelled."""
        from flashmm.temporal.client import connect

        client = None
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
            while True:
                try:
                    client = client or await connect(self.address)
                    self.workflows = await asyncio.wait_for(recent_workflows(client), 5)
                    self.workflows_note = ""
                except Exception as e:  # the screen says so and keeps the last list
                    self.workflows_note = f"Temporal did not answer ({type(e).__name__})"
                if self.prometheus is not None:
                    try:
                        self.alerts = await self.prometheus.alerts(http)
                        self.alerts_note = ""
                    except Exception as e:
                        self.alerts = None
                        self.alerts_note = f"Prometheus did not answer ({type(e).__name__})"
                await self._models(http)
                await asyncio.sleep(self.every_s)

    async def _models(self, http: aiohttp.ClientSession) -> None:
        auth = {"Authorization": f"Bearer {self.token}"}
        for symbol, url in self.hotpaths.items():
            try:
                async with http.get(f"{url}/v1/status", headers=auth) as r:
                    sig = (await r.json()).get("signal")
                self.models[symbol] = sig if isinstance(sig, dict) else {}
            except Exception:  # restarting: the panel shows the status line's figures
                self.models.pop(symbol, None)


class Display:
    """The demo's per-interval status: the dashboard with its background feeds (a
    terminal), or one plain line per market."""

    def __init__(
        self,
        dashboard: bool,
        links: dict[str, str],
        log_file: Path,
        temporal_address: str,
        prometheus: Any,
        hotpaths: dict[str, str] | None = None,
        token: str = "",
    ) -> None:
        self.links, self.log_file = links, log_file
        self.screen = Screen() if dashboard else None
        self.feeds = Feeds(temporal_address, prometheus, hotpaths, token) if dashboard else None
        self._task: Any = None

    def __enter__(self) -> Display:
        if self.screen is not None and self.feeds is not None:
            self._task = asyncio.create_task(self.feeds.run())
            self.screen.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.screen is not None:
            self.screen.__exit__(None, None, None)

    def update(self, views: list[MarketView], elapsed: float) -> None:
        if self.screen is None or self.feeds is None:
            for v in views:
                print(plain_line(v, elapsed), flush=True)
            return
        f = self.feeds
        for v in views:
            v.model = f.models.get(v.symbol) or v.model
        board = Board(
            elapsed,
            views,
            self.links,
            f.workflows,
            f.workflows_note,
            f.alerts,
            f.alerts_note,
            log_tail(self.log_file),
        )
        self.screen.show(board)
