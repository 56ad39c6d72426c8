"""A dependency-free progress line on stderr: redrawn in place on a terminal (at most ten
times a second), one final line per bar otherwise; silent when ``quiet``."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``update(n, **stats)`` after each step; ``close(**stats)`` at the end."""

    def __init__(
        self, total: int, desc: str, quiet: bool = False, stream: TextIO | None = None
    ) -> None:
        self.total = max(1, total)
        self.desc = desc
        self.quiet = quiet
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.done = 0
        self.start = time.monotonic()
        self._last_draw = 0.0

    def _line(self, stats: dict[str, float]) -> str:
        frac = self.done / self.total
        width = 24
        fill = int(frac * width)
        bar = "#" * fill + "-" * (width - fill)
        dt = time.monotonic() - self.start
        rate = self.done / dt if dt > 0 else 0.0
        shown = " ".join(f"{k}={v:.4f}" for k, v in stats.items())
        return f"{self.desc} [{bar}] {self.done}/{self.total} {rate:.1f}it/s {dt:.1f}s {shown}"

    def update(self, n: int = 1, **stats: float) -> None:
        self.done += n
        if self.quiet or not self.tty:
            return
        now = time.monotonic()
        if now - self._last_draw >= 0.1 or self.done >= self.total:
            self._last_draw = now
            self.stream.write("\r\x1b[K" + self._line(stats))
            self.stream.flush()

    def close(self, **stats: float) -> None:
        if self.quiet:
            return
        self.stream.write(("\r\x1b[K" if self.tty else "") + self._line(stats) + "\n")
        self.stream.flush()
