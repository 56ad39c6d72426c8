"""``databento-mbo``: Databento market-by-order files (DBN, plain or zstd) to the event store.

An order book (order id → side, price, size) is kept while reading, and every add, cancel or
modify becomes a ``DEPTH`` event carrying the level's new absolute size (``SNAPSHOT`` for
records flagged ``F_SNAPSHOT``, after a ``CLEAR``). ``T`` records are the trades, with the
aggressor's side; ``F`` records only describe the resting order's fill: CME sends the book
change as the ``C``/``M`` that follows, so a fill does not change the book here. The L2 book
is rebuilt on the way and checked at the end of each venue event (``F_LAST``): crossed
states are counted in ``checks`` (CME's pre-open book may cross; inside one event, before its
last record, the book may be crossed for a moment), a crossed snapshot is refused.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import databento_dbn as dbn
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
)
from flashmm.marketdata.units import Units

FIXED = 1_000_000_000  # DBN prices are integers of 1e-9
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_SIDES = {"B": 1, "A": -1, "N": 0}
_ACTIONS = dict(A="add", C="cancel", M="modify", R="clear", T="trade", F="fill", N="none")


def import_files(
    files: list[Path], instrument: StoreInstrument, options: ImportOptions
) -> tuple[Events, Manifest]:
    """Read definition and MBO files (any order among FILEs; MBO files in time order)."""
    del options  # one instrument's DBN sequence numbers are not contiguous: no gap check
    manifest = Manifest("databento-mbo", instrument, [file_source(f) for f in files])
    defs: list[dbn.InstrumentDefMsg] = []
    mbo: list[tuple[Path, dbn.Metadata]] = []
    for f in files:
        meta = next(_records(f, chunk=4096), None)  # the header alone, not the records
        if not isinstance(meta, dbn.Metadata):
            raise StoreError(f"{f.name}: no DBN metadata header")
        schema = str(meta.schema)
        if schema == "definition":
            defs += [r for r in _records(f) if isinstance(r, dbn.InstrumentDefMsg)]
        elif schema == "mbo":
            mbo.append((f, meta))
        else:
            raise StoreError(f"{f.name}: DBN schema {schema!r}; this format reads mbo, definition")
    if not mbo:
        raise StoreError("no MBO file among the inputs (only instrument definitions)")
    ids = _instrument_ids(instrument.symbol, defs, [m for _, m in mbo])
    b = _Builder(instrument, _check_tick(instrument, defs, manifest), ids, manifest)
    for f, _ in mbo:
        b.read(f)
    return b.finish()


def _records(path: Path, chunk: int = 1 << 20) -> Iterator[Any]:
    """Decoded records of one file (its Metadata first), read in chunks; a truncated or
    corrupt file raises ``StoreError``."""
    with path.open("rb") as fh:
        head = fh.read(4)
    if head == _ZSTD_MAGIC:
        if problem := _zstd_problem(path):
            raise StoreError(f"{path.name}: truncated or corrupt zstd stream: {problem}")
        dec = dbn.DBNDecoder(compression=dbn.Compression.from_str("zstd"))
    elif head[:3] == b"DBN":
        dec = dbn.DBNDecoder()
    else:
        raise StoreError(f"{path.name}: not a DBN file (no 'DBN' or zstd magic at the start)")
    try:
        with path.open("rb") as fh:
            for data in iter(lambda: fh.read(chunk), b""):
                yield from dec.write_and_decode(data)
            yield from dec.decode()
    except dbn.DBNError as e:
        raise StoreError(f"{path.name}: unreadable DBN ({e})") from e
    if left := len(dec.buffer()):
        raise StoreError(f"{path.name}: truncated: the last {left} bytes are an incomplete record")


def _zstd_problem(path: Path) -> str:
    """Walk the zstd frames' block headers (no decompression): '' when every frame is whole."""
    size = path.stat().st_size
    pos = 0
    with path.open("rb") as fh:
        while pos < size:
            fh.seek(pos)
            head = fh.read(8)
            magic = int.from_bytes(head[:4], "little")
            if len(head) == 8 and 0x184D2A50 <= magic <= 0x184D2A5F:  # skippable frame
                pos += 8 + int.from_bytes(head[4:8], "little")
                continue
            if head[:4] != _ZSTD_MAGIC or len(head) < 6:
                return f"no whole zstd frame header at byte {pos}"
            fhd = head[4]
            single = fhd >> 5 & 1
            fcs = (0, 2, 4, 8)[fhd >> 6] or single
            pos += 5 + (1 - single) + (0, 1, 2, 4)[fhd & 3] + fcs
            last = 0
            while not last:
                fh.seek(pos)
                bh = fh.read(3)
                if len(bh) < 3:
                    return f"block header cut at byte {pos}"
                v = int.from_bytes(bh, "little")
                last, btype, bsize = v & 1, v >> 1 & 3, v >> 3
                pos += 3 + (1 if btype == 1 else bsize)
            pos += 4 * (fhd >> 2 & 1)  # content checksum
    return "" if pos == size else f"the last frame needs {pos} bytes, the file has {size}"


def _instrument_ids(
    symbol: str, defs: list[dbn.InstrumentDefMsg], metas: list[dbn.Metadata]
) -> set[int]:
    """Instrument ids of ``symbol`` from the definitions and the MBO files' symbology."""
    known: dict[str, set[int]] = {}
    for d in defs:
        known.setdefault(d.raw_symbol, set()).add(int(d.instrument_id))
    for m in metas:
        for raw, intervals in m.mappings.items():
            for iv in intervals:
                if str(iv["symbol"]).isdigit():
                    known.setdefault(raw, set()).add(int(iv["symbol"]))
    if symbol not in known:
        have = ", ".join(sorted(known)) or "none"
        raise StoreError(f"symbol {symbol!r} is not in the files; symbols present: {have}")
    return known[symbol]


def _check_tick(instrument: StoreInstrument, defs: list[dbn.InstrumentDefMsg], m: Manifest) -> int:
    """The tick in DBN fixed-point units, checked against the symbol's definition; without
    one, against a definition of the same product (``asset``, e.g. ES of ESM3 for ESH4)."""
    tick = Decimal(instrument.tick)
    fixed = tick * FIXED
    if fixed != fixed.to_integral_value():
        raise StoreError(f"tick {tick} is finer than DBN's 1e-9 price resolution")
    sym = instrument.symbol
    own = [d for d in defs if d.raw_symbol == sym]
    kin = [d for d in defs if d.asset and sym.startswith(d.asset) and len(sym) - len(d.asset) <= 3]
    if not own:
        m.warn("tick_from_same_product_definition" if kin else "tick_unchecked_no_definition")
    for d in own or kin:
        theirs = Decimal(int(d.min_price_increment)) / FIXED
        if theirs != tick:
            raise StoreError(
                f"--tick {tick} differs from the definition of {d.raw_symbol}: "
                f"min_price_increment {theirs.normalize()}"
            )
    return int(fixed)


class _Builder:
    """Order book, L2 book, checks and the event rows of one import."""

    def __init__(self, inst: StoreInstrument, tick: int, ids: set[int], m: Manifest) -> None:
        self.tick, self.ids, self.m = tick, ids, m
        self.units = None if Decimal(inst.lot) == 1 else Units(inst)
        self.orders: dict[int, tuple[int, int, int]] = {}  # id → (side, ticks, lots)
        self.book = L2Book()
        self.rows: list[tuple[int, int, int, int, int, int]] = []
        self.actions: dict[str, int] = {}
        self.records = self.other = self.added = self.last_ts = self.backwards = 0
        self.crossed = 0  # at the end of venue events (F_LAST)
        self.crossed_trading = 0  # the same, after the first trade (the pre-open may cross)
        self.crossed_records = 0  # after any record, mid-event states included
        self.spreads: list[int] = []  # at event ends after the first trade
        self.traded = self.in_snapshot = False

    def read(self, path: Path) -> None:
        first = True
        for r in _records(path):
            if not isinstance(r, dbn.MBOMsg):
                if not isinstance(r, dbn.Metadata):
                    self.m.warn("non_mbo_records")
                continue
            self.records += 1
            if r.instrument_id not in self.ids:
                self.other += 1
                continue
            ts = r.ts_event
            if ts < self.last_ts:
                if first:
                    raise StoreError(
                        f"{path.name} starts at ts_event {ts}, before the previous file ends "
                        f"({self.last_ts}): give the files in time order"
                    )
                self.backwards += 1  # keep the source's order (sizes are absolute): clamp
                ts = self.last_ts
            first = False
            self.last_ts = ts
            self.apply(r, ts)

    def ticks(self, r: dbn.MBOMsg) -> int:
        q, rem = divmod(r.price, self.tick)
        if rem or q < 0:
            raise StoreError(
                f"price {Decimal(r.price) / FIXED} at ts_event {r.ts_event} is not a multiple "
                f"of tick {Decimal(self.tick) / FIXED}"
            )
        return q

    def lots(self, size: int) -> int:
        return size if self.units is None else self.units.lots(size)

    def level(self, ts: int, recv: int, kind: int, side: int, price: int, delta: int) -> None:
        book = self.book
        new = (book.bids if side > 0 else book.asks).get(price, 0) + delta
        if new < 0:
            self.m.warn("level_below_zero")
            new = 0
        book.set_level(side, price, new)
        self.rows.append((ts, recv, kind, side, price, new))

    def apply(self, r: dbn.MBOMsg, ts: int) -> None:
        action = str(r.action)
        self.actions[action] = self.actions.get(action, 0) + 1
        recv, flags, oid, orders = r.ts_recv, r.flags, r.order_id, self.orders
        snap = bool(flags & dbn.F_SNAPSHOT)
        if snap and not self.in_snapshot and action != "R":
            self.clear(ts, recv)
        if self.in_snapshot and not snap:
            self.end_snapshot()
        self.in_snapshot = snap
        kind = SNAPSHOT if snap else DEPTH
        if action == "A" or (action == "M" and oid not in orders):
            if action == "M":
                self.m.warn("modify_unknown_order_as_add")
            elif oid in orders:
                self.m.warn("add_existing_order_replaced")
                self.remove(ts, recv, kind, oid, orders[oid][2])
            side = _SIDES[str(r.side)]
            if not side:
                self.m.warn("order_without_side_skipped")
                return
            px, lots = self.ticks(r), self.lots(r.size)
            orders[oid] = (side, px, lots)
            self.added += 1
            self.level(ts, recv, kind, side, px, lots)
        elif action == "C":
            o = orders.get(oid)
            if o is None:
                self.m.warn("cancel_unknown_order")
                return
            lots = self.lots(r.size)
            if lots > o[2]:
                self.m.warn("cancel_larger_than_order")
            self.remove(ts, recv, kind, oid, min(lots, o[2]))
        elif action == "M":
            side, px, lots = orders[oid]
            new_px, new_lots = self.ticks(r), self.lots(r.size)
            if new_px == px:
                orders[oid] = (side, px, new_lots)
                self.level(ts, recv, kind, side, px, new_lots - lots)
            else:
                self.remove(ts, recv, kind, oid, lots)
                orders[oid] = (side, new_px, new_lots)
                self.level(ts, recv, kind, side, new_px, new_lots)
        elif action == "T":
            side = _SIDES[str(r.side)]
            if not side:
                self.m.warn("trade_without_aggressor_side_0")
            self.rows.append((ts, recv, TRADE, side, self.ticks(r), self.lots(r.size)))
            self.traded = True
        elif action == "R":
            self.clear(ts, recv)
        # F (the resting order's fill: its C/M follows) and N change nothing
        if not snap:
            self.check(bool(flags & dbn.F_LAST))

    def remove(self, ts: int, recv: int, kind: int, oid: int, lots: int) -> None:
        side, px, have = self.orders[oid]
        if have - lots <= 0:
            del self.orders[oid]
        else:
            self.orders[oid] = (side, px, have - lots)
        self.level(ts, recv, kind, side, px, -lots)

    def clear(self, ts: int, recv: int) -> None:
        self.orders.clear()
        self.book.clear()
        if not self.rows or self.rows[-1][2] != CLEAR:  # an R right before a snapshot: one
            self.rows.append((ts, recv, CLEAR, 0, 0, 0))

    def end_snapshot(self) -> None:
        b = self.book
        if b.crossed():
            raise StoreError(
                f"the snapshot ending at ts_event {self.last_ts} is crossed: best bid "
                f"{b.best_bid} >= best ask {b.best_ask} (ticks)"
            )

    def check(self, event_end: bool) -> None:
        b = self.book
        crossed = b.crossed()
        self.crossed_records += crossed
        if not event_end:
            return
        if crossed:
            self.crossed += 1
            self.crossed_trading += self.traded
        elif b.best_bid and b.best_ask and self.traded:
            self.spreads.append(b.best_ask - b.best_bid)

    def finish(self) -> tuple[Events, Manifest]:
        if self.in_snapshot:
            self.end_snapshot()
        m = self.m
        if self.records == self.other:
            raise StoreError(f"no MBO record of {m.instrument.symbol} (ids {sorted(self.ids)})")
        if self.backwards:
            m.warn("ts_event_backwards_clamped", self.backwards)
        events: Events = np.array(self.rows, dtype=EVENT_DTYPE)
        ck = m.checks
        ck.update(records_read=self.records, records_other_instruments=self.other)
        ck["orders"] = self.added
        for code, n in sorted(self.actions.items()):
            ck[f"action_{_ACTIONS.get(code, code)}"] = n
        ck["crossed_book_events"] = self.crossed
        ck["crossed_book_events_after_first_trade"] = self.crossed_trading
        ck["crossed_book_records"] = self.crossed_records
        ck["median_spread_ticks"] = statistics.median(self.spreads) if self.spreads else 0
        ck.update(final_best_bid=self.book.best_bid, final_best_ask=self.book.best_ask)
        return events, m
