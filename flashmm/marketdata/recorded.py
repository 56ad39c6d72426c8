"""``flashmm``: the hot path's own session recordings (``flashmm.ml.recording``) to the event
store.

``S`` (the book the hot path held) becomes ``CLEAR`` + ``SNAPSHOT`` rows, ``D`` (levels with
their new absolute size) ``DEPTH`` rows, ``T`` a ``TRADE`` (aggressor side); ``F`` feature
samples are not market data and only counted. Prices and sizes are already the venue's integer
ticks and lots and are kept as they are (the recording does not name its tick: ``--tick`` and
``--lot`` label them). The records' monotonic ``ts_ns`` become UTC through each file's ``C``
clock record; both store timestamps are that receive time (the recorder knows no exchange
time). Files from before the clock record are refused. ``D`` sequence numbers must continue
one another (a break is refused, or with ``allow_gaps`` marked by a ``GAP``).
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from flashmm.book.l2 import L2Book
from flashmm.marketdata.importers import ImportOptions
from flashmm.marketdata.store import (
    CLEAR,
    DEPTH,
    EVENT_DTYPE,
    GAP,
    SNAPSHOT,
    TRADE,
    Events,
    Manifest,
    StoreError,
    StoreInstrument,
    file_source,
)

_FILE_ORDER_SLACK_NS = 1_000_000_000  # clock pairs of two files may disagree by a little
_TS_FIELD = {"S": 4, "D": 3, "T": 1}


def import_files(
    files: list[Path], instrument: StoreInstrument, options: ImportOptions
) -> tuple[Events, Manifest]:
    """Read recording files (``*.jsonl.gz``, one session, in time order)."""
    manifest = Manifest("flashmm", instrument, [])
    r = _Reader(manifest, options)
    for f in files:
        manifest.files.append(file_source(f, r.read(f)))
    if not r.rows:
        raise StoreError("the recordings hold no market data (no S, D or T record)")
    m = manifest.checks
    m.update({f"records_{k}": float(v) for k, v in sorted(r.kinds.items())})
    m["feature_samples"] = r.kinds.get("F", 0)
    m["crossed_book_events"] = r.crossed
    m.update(final_best_bid=r.book.best_bid, final_best_ask=r.book.best_ask)
    return np.array(r.rows, dtype=EVENT_DTYPE), manifest


class _Reader:
    def __init__(self, manifest: Manifest, options: ImportOptions) -> None:
        self.m = manifest
        self.allow_gaps = options.allow_gaps
        self.book = L2Book()
        self.seq: int | None = None  # the last applied sequence; None before the first S
        self.last_ts = 0
        self.rows: list[tuple[int, int, int, int, int, int]] = []
        self.kinds: dict[str, int] = {}
        self.crossed = 0

    def read(self, path: Path) -> int:
        """Append one file's events; returns the number of lines read."""
        offset: int | None = None  # wall − monotonic, from the file's C record
        first = True
        n = 0
        try:
            with gzip.open(path, "rb") as f:
                for n, raw in enumerate(f, 1):
                    where = f"{path.name}:{n}"
                    try:
                        rec = json.loads(raw)
                        kind = str(rec[0])
                    except (ValueError, IndexError, TypeError, KeyError) as e:
                        if not raw.endswith(b"\n"):  # a crash mid-write: the rest is lost
                            self.m.warn("torn_last_line")
                            break
                        raise StoreError(f"{where}: not a recording record ({e})") from e
                    self.kinds[kind] = self.kinds.get(kind, 0) + 1
                    if kind == "C":
                        offset = int(rec[1]) - int(rec[2])
                        continue
                    if kind == "F":
                        continue
                    field = _TS_FIELD.get(kind)
                    if field is None:
                        self.m.warn("unknown_records")
                        continue
                    if offset is None or len(rec) <= field:
                        raise StoreError(
                            f"{where}: this recording predates timestamps (no clock record, "
                            f"{kind} records without ts_ns); record the session again with "
                            "this version to import it"
                        )
                    ts = int(rec[field]) + offset
                    if first and ts < self.last_ts - _FILE_ORDER_SLACK_NS:
                        raise StoreError(
                            f"{where}: starts {(self.last_ts - ts) / 1e9:.3f} s before the "
                            "previous file ends: give the files in time order"
                        )
                    first = False
                    if ts < self.last_ts:  # keep the recorded order (sizes are absolute)
                        self.m.warn("timestamps_backwards_clamped")
                        ts = self.last_ts
                    self.last_ts = ts
                    self.apply(kind, rec, ts, where)
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            self.m.warn("truncated_files")  # the recorder's crash: counted, not hidden
            self.m.gap_examples.append(f"{path.name} ends early after line {n}: {e}")
        return n

    def apply(self, kind: str, rec: list[Any], ts: int, where: str) -> None:
        rows, book = self.rows, self.book
        if kind == "T":
            rows.append((ts, ts, TRADE, int(rec[4]), int(rec[2]), int(rec[3])))
            return
        seq = int(rec[1])
        if kind == "S":
            book.clear()
            rows.append((ts, ts, CLEAR, 0, 0, 0))
            for side, levels in ((1, rec[2]), (-1, rec[3])):
                for price, lots in levels:
                    book.set_level(side, int(price), int(lots))
                    rows.append((ts, ts, SNAPSHOT, side, int(price), int(lots)))
            if book.crossed():
                raise StoreError(
                    f"{where}: the snapshot is crossed: best bid {book.best_bid} >= best ask "
                    f"{book.best_ask} (ticks)"
                )
            self.seq = seq
            return
        if self.seq is None:
            self.m.warn("deltas_before_first_snapshot_skipped")
            return
        if seq != self.seq + 1:
            text = f"{where}: sequence {seq} after {self.seq}"
            if not self.allow_gaps:
                raise StoreError(f"{text}: records are missing (a file left out?)")
            self.m.sequence_gaps += 1
            if len(self.m.gap_examples) < 10:
                self.m.gap_examples.append(text)
            rows.append((ts, ts, GAP, 0, 0, 0))
        self.seq = seq
        for side, price, lots in rec[2]:
            book.set_level(int(side), int(price), int(lots))
            rows.append((ts, ts, DEPTH, int(side), int(price), int(lots)))
        if book.crossed():
            self.crossed += 1
