"""What ``flashmm demo`` shows while it runs.

On a terminal: a dashboard that redraws in place (``rich`` Live) with one panel per market
(trading state, the book's top, our quotes, position against its limit, PnL, fills, cycle
latency, the model signal), one for the chain (our open orders and balances per market), one
for the control plane (the latest workflow executions in Temporal), one for the alerts that
the demo's Prometheus has pending or firing, and the tail of the run's log file (the
children's stderr goes there, so a warning never breaks the screen).

Elsewhere (a pipe, CI, ``--plain``): one line per market per interval, as before.

Everything renders from plain data (``cli/demo_board.py``), so it is tested without
processes. Here: the display itself (:class:`Display` picks dashboard or plain lines), the
terminal screen and the redirect of stderr to the log; the panels are in
``cli/demo_panels.py``, the plain lines in ``cli/demo_plain.py``, the slower sources in
``cli/demo_feeds.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from rich.console import Console
from rich.live import Live

from cli.demo_board import Board, MarketView
from cli.demo_feeds import Feeds, log_tail
from cli.demo_panels import render
from cli.demo_plain import plain_line


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
