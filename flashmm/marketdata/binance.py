"""``binance-ws``: Binance WebSocket captures (``<local ts> <raw JSON>`` per line, gzip) to the
event store, with Binance's own book-sync rules.

The store starts at the first REST depth snapshot (a line without ``stream``). Depth diffs are
taken in update-id order from the snapshot on: diffs with ``u`` below the snapshot's
``lastUpdateId`` are dropped, the first kept diff must straddle it, and every later one must
continue the chain (USD-M futures: ``pu`` equals the previous ``u``; spot: ``U`` is the previous
``u`` + 1). A break is a sequence gap: refused, or with ``allow_gaps`` marked by a ``GAP`` event
and counted. Events are ordered by the exchange's time (``T``, else ``E``); local timestamps are
kept as recorded (µs files are scaled to ns). While importing, the book is rebuilt and checked:
never crossed, and compared with Binance's own best bid/offer feed where that is exact.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flashmm.book.l2 import L2Book
from flashmm.marketdata.importers import ImportOptions
from flashmm.marketdata.store import (
    BBO,
    CLEAR,
    DEPTH,
    GAP,
    SNAPSHOT,
    TRADE,
    Events,
    Manifest,
    StoreError,
    StoreInstrument,
    file_source,
    make_events,
    order_by_exchange_time,
)
from flashmm.marketdata.units import Units

_MS = 1_000_000


def _lines(path: Path, manifest: Manifest) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(line number, local ts in ns, message) for each readable line; problems are counted."""
    prev = 0
    n = 0
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            for n, raw in enumerate(f, 1):
                sp = raw.find(b" ")
                try:
                    ts_text = raw[:sp]
                    ts = int(ts_text)
                    msg = json.loads(raw[sp + 1 :])
                except (ValueError, json.JSONDecodeError):
                    if not raw.endswith(b"\n"):
                        manifest.warn("truncated_last_line")
                        continue
                    manifest.warn("unreadable_lines")
                    continue
                if len(ts_text) <= 16:
                    ts *= 1000  # the 2023 captures stamp microseconds
                if ts < prev:
                    raise StoreError(
                        f"{path.name}:{n}: local timestamp {ts} is before the previous line's "
                        f"{prev}: the file is not in capture order"
                    )
                prev = ts
                if isinstance(msg, dict):
                    yield n, ts, msg
                else:
                    manifest.warn("unreadable_lines")
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        manifest.warn("truncated_files")
        manifest.gap_examples.append(f"{path.name} ends early after line {n}: {e}")


class _Builder:
    """Collects rows and keeps the sync state while lines are read in order."""

    def __init__(self, instrument: StoreInstrument, options: ImportOptions, m: Manifest) -> None:
        self.u = Units(instrument)
        self.symbol = instrument.symbol.upper()
        self.options = options
        self.m = m
        self.cols: dict[str, list[int]] = {
            k: [] for k in ("exch_ts", "local_ts", "kind", "side", "price", "qty")
        }
        self.book = L2Book()
        self.pending: list[tuple[int, dict[str, Any]]] = []  # diffs seen before the snapshot
        self.synced = False
        self.first_diff = True
        self.last_u = 0
        self.last_depth_ts = 0
        self.start_ts = 0
        self.bbo_checked = 0
        self.bbo_matched = 0
        self.crossed = 0

    def row(self, exch: int, local: int, kind: int, side: int, price: int, qty: int) -> None:
        c = self.cols
        c["exch_ts"].append(exch)
        c["local_ts"].append(local)
        c["kind"].append(kind)
        c["side"].append(side)
        c["price"].append(price)
        c["qty"].append(qty)

    def _check_symbol(self, d: dict[str, Any], where: str) -> None:
        s = d.get("s")
        if s is not None and str(s).upper() != self.symbol:
            raise StoreError(f"{where}: the recording is {s}, not --symbol {self.symbol}")

    # --- messages -----------------------------------------------------------------------
    def on_message(self, where: str, local: int, msg: dict[str, Any]) -> None:
        data = msg.get("data")
        if data is None:
            if "lastUpdateId" in msg:
                self.on_snapshot(where, local, msg)
            else:
                self.m.warn("other_messages")
            return
        ev = data.get("e")
        if ev is None and str(msg.get("stream", "")).endswith("@bookTicker"):
            ev = "bookTicker"  # spot's bookTicker carries no event type
        self._check_symbol(data, where)
        if ev == "depthUpdate":
            if self.synced:
                self.on_diff(where, local, data)
            else:
                self.pending.append((local, data))
        elif ev in ("trade", "aggTrade"):
            self.on_trade(where, local, data)
        elif ev == "bookTicker":
            self.on_bbo(where, local, data)
        else:
            self.m.warn(f"skipped_{ev}")

    def on_snapshot(self, where: str, local: int, msg: dict[str, Any]) -> None:
        if self.synced:
            self.m.warn("later_snapshots_ignored")
            return
        last_id = int(msg["lastUpdateId"])
        kept = [(loc, d) for loc, d in self.pending if int(d["u"]) >= last_id]
        self.m.warn("diffs_before_snapshot_dropped", len(self.pending) - len(kept))
        self.pending.clear()
        ts_field = msg.get("T") or msg.get("E")
        first = kept[0][1] if kept else None
        ts = int(ts_field) * _MS if ts_field else 0
        if first is not None:
            ft = int(first.get("T") or first["E"]) * _MS
            ts = min(ts, ft) if ts else ft
        if not ts:
            ts = local  # spot snapshots carry no time; the next diff will move the clock on
        self.start_ts = ts
        u = self.u
        try:
            bids = [(u.ticks(p), u.lots(q)) for p, q in msg["bids"]]
            asks = [(u.ticks(p), u.lots(q)) for p, q in msg["asks"]]
        except StoreError as e:
            raise StoreError(f"{where}: snapshot: {e}") from e
        self.row(ts, local, CLEAR, 0, 0, 0)
        book = self.book
        for side, levels in ((1, bids), (-1, asks)):
            for p, q in levels:
                if q:
                    book.set_level(side, p, q)
                    self.row(ts, local, SNAPSHOT, side, p, q)
        if book.crossed():
            raise StoreError(
                f"{where}: the snapshot is crossed (best bid {book.best_bid} ≥ best ask "
                f"{book.best_ask} ticks): refusing to build a wrong book"
            )
        self.synced = True
        self.last_u = last_id
        self.last_depth_ts = ts
        self.first_diff = True
        for loc, d in kept:
            self.on_diff(where + " (buffered)", loc, d)

    def on_diff(self, where: str, local: int, d: dict[str, Any]) -> None:
        first_id, last_id = int(d["U"]), int(d["u"])
        if last_id < self.last_u:
            self.m.warn("stale_diffs_dropped")
            return
        if self.first_diff:
            ok = first_id <= self.last_u + 1 <= last_id or first_id <= self.last_u <= last_id
            self.first_diff = False
        elif "pu" in d:
            ok = int(d["pu"]) == self.last_u
        else:
            ok = first_id == self.last_u + 1
        ts = max(int(d.get("T") or d["E"]) * _MS, self.last_depth_ts)
        if not ok:
            self._gap(where, local, ts, f"diff U={first_id} after u={self.last_u}")
        self.last_u = last_id
        self.last_depth_ts = ts
        u = self.u
        book = self.book
        try:
            for side, key in ((1, "b"), (-1, "a")):
                for p, q in d[key]:
                    price, lots = u.ticks(p), u.lots(q)
                    book.set_level(side, price, lots)
                    self.row(ts, local, DEPTH, side, price, lots)
        except StoreError as e:
            raise StoreError(f"{where}: {e}") from e
        if book.crossed():
            self.crossed += 1

    def _gap(self, where: str, local: int, ts: int, what: str) -> None:
        self.m.sequence_gaps += 1
        if len(self.m.gap_examples) < 10:
            self.m.gap_examples.append(f"{where}: {what}")
        if not self.options.allow_gaps:
            raise StoreError(
                f"{where}: sequence gap ({what}): messages are missing, so the book would be "
                "wrong from here (import with --allow-gaps to keep it, marked and counted)"
            )
        self.row(ts, local, GAP, 0, 0, 0)

    def on_trade(self, where: str, local: int, d: dict[str, Any]) -> None:
        if d.get("X", "MARKET") != "MARKET":
            self.m.warn("non_market_trades_skipped")
            return
        ts = int(d.get("T") or d["E"]) * _MS
        if not self.synced or ts < self.start_ts:
            self.m.warn("trades_before_snapshot_dropped")
            return
        try:
            price, lots = self.u.ticks(d["p"]), self.u.lots(d["q"])
        except StoreError as e:
            raise StoreError(f"{where}: trade: {e}") from e
        self.row(ts, local, TRADE, -1 if d["m"] else 1, price, lots)

    def on_bbo(self, where: str, local: int, d: dict[str, Any]) -> None:
        if not self.synced:
            return
        try:
            bid, bq = self.u.ticks(d["b"]), self.u.lots(d["B"])
            ask, aq = self.u.ticks(d["a"]), self.u.lots(d["A"])
        except StoreError as e:
            raise StoreError(f"{where}: bookTicker: {e}") from e
        ts_field = d.get("T") or d.get("E")
        ts = int(ts_field) * _MS if ts_field else self.last_depth_ts
        ts = max(ts, self.start_ts)
        self.row(ts, local, BBO, 1, bid, bq)
        self.row(ts, local, BBO, -1, ask, aq)
        if int(d["u"]) == self.last_u:  # the book is exactly at this update id
            self.bbo_checked += 1
            if self.book.best_bid == bid and self.book.best_ask == ask:
                self.bbo_matched += 1


def import_files(
    files: list[Path], instrument: StoreInstrument, options: ImportOptions
) -> tuple[Events, Manifest]:
    """Read one stream split over ``files`` (in order)."""
    m = Manifest("binance-ws", instrument, [])
    b = _Builder(instrument, options, m)
    last_local = 0
    for path in files:
        lines = 0
        first_local = -1
        for n, local, msg in _lines(path, m):
            lines = n
            if first_local < 0:
                first_local = local
                if local < last_local:
                    raise StoreError(
                        f"{path.name} starts before the previous file ends: give the files in "
                        "time order"
                    )
            b.on_message(f"{path.name}:{n}", local, msg)
            last_local = local
        m.files.append(file_source(path, lines))
    if not b.synced:
        raise StoreError(
            "no depth snapshot (a REST answer with lastUpdateId) in the recording: "
            "the book cannot be built"
        )
    m.checks["crossed_book_events"] = float(b.crossed)
    m.checks["bbo_checked"] = float(b.bbo_checked)
    if b.bbo_checked:
        m.checks["bbo_match_pct"] = 100.0 * b.bbo_matched / b.bbo_checked
    return order_by_exchange_time(make_events(b.cols)), m
