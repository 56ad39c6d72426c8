"""``tardis``: Tardis.dev's documented CSV files (``incremental_book_L2`` and ``trades``, plain
or gzip) to the event store.

Each file's kind comes from its header. Rows of other symbols are skipped (counted). Book rows
carry the level's new absolute ``amount``: a run of ``is_snapshot=true`` rows is a new snapshot
(``CLEAR`` both sides, then ``SNAPSHOT`` rows), other rows are ``DEPTH``. Trade sides are the
aggressor's (``unknown`` becomes side 0, counted). Timestamps are µs (scaled to ns); inside a
file they must not go backwards (refused, naming the line), and book files must follow one
another in time. All files merge into one stream ordered by exchange time.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flashmm.book.l2 import L2Book
from flashmm.marketdata.importers import ImportOptions
from flashmm.marketdata.store import (
    CLEAR,
    DEPTH,
    EVENT_DTYPE,
    SNAPSHOT,
    TRADE,
    Events,
    Manifest,
    StoreError,
    StoreInstrument,
    file_source,
    order_by_exchange_time,
)
from flashmm.marketdata.units import Units

BOOK_HEADER = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"
TRADES_HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
_BOOK_SIDES = {"bid": 1, "ask": -1}
_TRADE_SIDES = {"buy": 1, "sell": -1, "unknown": 0}
_US = 1000

Row = tuple[int, int, int, int, int, int]


@dataclass(slots=True)
class _State:
    """What carries over from file to file: the book (for the checks) and the counts."""

    units: Units
    symbol: str
    manifest: Manifest
    book: L2Book = field(default_factory=L2Book)
    book_end_ns: int = 0
    symbols: set[str] = field(default_factory=set)
    rows: dict[str, int] = field(default_factory=dict)
    crossed: int = 0
    snapshot_seen: bool = False


def import_files(
    files: list[Path], instrument: StoreInstrument, options: ImportOptions
) -> tuple[Events, Manifest]:
    """Read ``incremental_book_L2`` and ``trades`` files (book files in time order)."""
    del options  # Tardis CSVs carry no sequence numbers
    manifest = Manifest("tardis", instrument, [])
    st = _State(Units(instrument), instrument.symbol, manifest)
    rows: list[Row] = []
    for f in files:
        kind, lines = _read(f, st, rows)
        manifest.files.append(file_source(f, lines))
        st.rows[f"{kind}_files"] = st.rows.get(f"{kind}_files", 0) + 1
    if not rows:
        have = ", ".join(sorted(st.symbols)) or "none"
        raise StoreError(f"no row of symbol {instrument.symbol!r}; symbols present: {have}")
    events = order_by_exchange_time(np.array(rows, dtype=EVENT_DTYPE))
    manifest.checks.update({k: float(v) for k, v in st.rows.items()})
    manifest.checks["crossed_book_events"] = st.crossed
    manifest.checks["final_best_bid"] = st.book.best_bid
    manifest.checks["final_best_ask"] = st.book.best_ask
    return events, manifest


def _lines(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            yield from io.TextIOWrapper(f, encoding="utf-8", newline="")
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise StoreError(f"{path.name}: truncated or corrupt gzip ({e})") from e
    except UnicodeDecodeError as e:
        raise StoreError(f"{path.name}: not UTF-8 text ({e})") from e


def _read(path: Path, st: _State, out: list[Row]) -> tuple[str, int]:
    """Append one file's rows of the symbol to ``out``; returns (kind, lines read)."""
    lines = _lines(path)
    header = next(lines, "").strip()
    if header not in (BOOK_HEADER, TRADES_HEADER):
        raise StoreError(
            f"{path.name}: header {header[:100]!r} is neither Tardis incremental_book_L2 "
            f"({BOOK_HEADER}) nor trades ({TRADES_HEADER})"
        )
    book = header == BOOK_HEADER
    units, symbol, m, b = st.units, st.symbol, st.manifest, st.book
    prev_ts = prev_local = mine = other = 0
    in_snapshot = False
    n = 1
    for n, raw in enumerate(lines, 2):
        where = f"{path.name}:{n}"
        if not raw.endswith("\n"):
            m.warn("truncated_last_line_dropped")  # a cut-off number would be a wrong value
            break
        row = raw.rstrip("\r\n").split(",")
        if len(row) != 8:
            raise StoreError(f"{where}: {len(row)} fields, expected 8")
        if row[1] != symbol:
            st.symbols.add(row[1])
            other += 1
            continue
        try:
            ts, local = int(row[2]) * _US, int(row[3]) * _US
            price, qty = units.ticks(row[6]), units.lots(row[7])
        except ValueError as e:
            raise StoreError(f"{where}: {e}") from e
        if ts < prev_ts:
            raise StoreError(
                f"{where}: timestamp {row[2]} goes back from {prev_ts // _US} on the line "
                "before: the rows are not in time order"
            )
        if local < prev_local:
            m.warn("local_timestamp_backwards")
        new_message = (ts, local) != (prev_ts, prev_local)
        prev_ts, prev_local = ts, local
        mine += 1
        if not book:
            side = _TRADE_SIDES.get(row[5])
            if side is None:
                raise StoreError(f"{where}: trade side {row[5]!r} (buy, sell or unknown)")
            if not side:
                m.warn("trade_without_aggressor_side_0")
            out.append((ts, local, TRADE, side, price, qty))
            continue
        side = _BOOK_SIDES.get(row[5], 0)
        if not side:
            raise StoreError(f"{where}: book side {row[5]!r} (bid or ask)")
        if mine == 1 and ts < st.book_end_ns:
            raise StoreError(f"{where}: starts before the previous book file ends")
        if row[4] not in ("true", "false"):
            raise StoreError(f"{where}: is_snapshot {row[4]!r} (true or false)")
        snap = row[4] == "true"
        if in_snapshot and not snap:
            _end_snapshot(b, f"{where}: the snapshot before this line")
        elif new_message and mine > 1 and b.crossed():
            st.crossed += 1  # checked once per message: its rows may cross for a moment
        if snap and not in_snapshot:
            b.clear()
            st.snapshot_seen = True
            out.append((ts, local, CLEAR, 0, 0, 0))
        elif not snap and not st.snapshot_seen:
            m.warn("depth_before_first_snapshot")
        in_snapshot = snap
        b.set_level(side, price, qty)
        out.append((ts, local, SNAPSHOT if snap else DEPTH, side, price, qty))
        st.book_end_ns = ts
    if in_snapshot:
        _end_snapshot(b, f"{path.name}:{n}: the snapshot ending here")
    elif book and mine and b.crossed():
        st.crossed += 1
    if not mine:
        m.warn("files_without_symbol_rows")
    kind = "book" if book else "trades"
    st.rows[f"{kind}_rows"] = st.rows.get(f"{kind}_rows", 0) + mine
    st.rows["rows_other_symbols"] = st.rows.get("rows_other_symbols", 0) + other
    return kind, n


def _end_snapshot(b: L2Book, what: str) -> None:
    if b.crossed():
        raise StoreError(
            f"{what} is crossed: best bid {b.best_bid} >= best ask {b.best_ask} (ticks)"
        )
