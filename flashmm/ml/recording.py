"""Recorded market sessions: the events the hot path applied, in order, in compressed,
size-bounded, rotating files — so real sessions become training data.

Records (one JSON array per line, gzip): ``["S", seq, bids, asks, ts_ns]`` book snapshot,
``["D", seq, levels, ts_ns]`` book delta, ``["T", ts_ns, price, lots, aggressor]`` trade,
``["F", ts_ns, inventory_util]`` a feature sample (a quote cycle), and first in each file
``["C", wall_ns, monotonic_ns]``: the clock pair that turns the records' monotonic ``ts_ns``
into UTC (files from before it have S/D records without ``ts_ns``). Replaying a file through
``replay`` rebuilds the book and runs the same ``FeatureEngine``, so it yields exactly the
vectors the hot path computed live.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flashmm.book.l2 import L2Book
from flashmm.ml.features import FeatureEngine


class SessionWriter:
    """Appends buffered records; rotates past ``max_bytes``, keeps ``max_files`` files."""

    def __init__(
        self, directory: Path, prefix: str, max_bytes: int = 64 * 1024 * 1024, max_files: int = 20
    ) -> None:
        self.dir = directory
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.max_files = max_files
        self._buf: list[str] = []
        self._file: gzip.GzipFile | None = None
        self._path: Path | None = None
        self.records = 0
        self.files: list[Path] = []

    def add(self, rec: list[Any]) -> None:
        """O(1): the hot path only appends; ``flush`` writes (off the loop)."""
        self._buf.append(json.dumps(rec, separators=(",", ":")))
        self.records += 1

    def take(self) -> list[str]:
        """Hand over the buffered lines (on the event loop), to ``write`` elsewhere."""
        lines, self._buf = self._buf, []
        return lines

    def flush(self) -> None:
        self.write(self.take())

    def write(self, lines: list[str]) -> None:
        """Compress and append (may run in a worker thread)."""
        if not lines:
            return
        f = self._open()
        f.write(("\n".join(lines) + "\n").encode())
        f.flush()
        if self._path is not None and self._path.stat().st_size >= self.max_bytes:
            self._rotate()

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None

    def _open(self) -> gzip.GzipFile:
        if self._file is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            name = f"{self.prefix}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-"
            n = sum(1 for _ in self.dir.glob(f"{name}*.jsonl.gz"))
            self._path = self.dir / f"{name}{n:03d}.jsonl.gz"
            self._file = gzip.GzipFile(self._path, "ab", compresslevel=5)
            self.files.append(self._path)
            clock = ["C", time.time_ns(), time.monotonic_ns()]
            self._file.write((json.dumps(clock, separators=(",", ":")) + "\n").encode())
        return self._file

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        old = sorted(self.dir.glob(f"{self.prefix}-*.jsonl.gz"), key=lambda p: p.stat().st_mtime)
        for p in old[: max(0, len(old) - self.max_files)]:
            p.unlink(missing_ok=True)


def read(path: Path) -> Iterator[list[Any]]:
    """Records of one file; a torn last line (a crash mid-write) ends the file quietly."""
    with gzip.open(path, "rt") as f:
        try:
            for line in f:
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError:
                        return
        except EOFError:
            return


def replay(paths: list[Path]) -> Iterator[tuple[int, list[float]]]:
    """(ts_ns, feature vector) at every recorded sample, recomputed from the events."""
    book = L2Book()
    fe = FeatureEngine()
    for path in paths:
        for rec in read(path):
            kind = rec[0]
            if kind == "D":
                for side, price, lots in rec[2]:
                    book.set_level(side, price, lots)
                book.seq = rec[1]
            elif kind == "T":
                fe.on_trade(rec[1], rec[2], rec[3], rec[4])
            elif kind == "F":
                yield rec[1], list(fe.sample(book, rec[1], rec[2]))
            elif kind == "S":
                book.clear()
                for price, lots in rec[2]:
                    book.set_level(1, price, lots)
                for price, lots in rec[3]:
                    book.set_level(-1, price, lots)
                book.seq = rec[1]
