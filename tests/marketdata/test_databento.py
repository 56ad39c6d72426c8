"""``databento-mbo`` import: the real ES hour rebuilds a sane book with the README's figures;
bad input (wrong tick, unknown symbol, truncated file, unknown order, crossed snapshot) is
refused or counted, never turned into a silently wrong book."""

from __future__ import annotations

import statistics
import time
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import databento_dbn as dbn
import numpy as np
import pytest

from flashmm.book.l2 import L2Book
from flashmm.marketdata.importers import ImportOptions, import_files
from flashmm.marketdata.store import (
    CLEAR,
    DEPTH,
    SNAPSHOT,
    TRADE,
    Events,
    EventStore,
    Manifest,
    StoreError,
    StoreInstrument,
    write_store,
)

ES = StoreInstrument("ESH4", "0.25", "1")
MBO_FILE = "databento-es/esh4-glbx-mdp3-20231225.mbo.dbn.zst"
DEF_FILE = "databento-es/definition-glbx-es-fut.dbn.zst"


def _ns(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * 1_000_000_000


def _es(shared_data: Path, inst: StoreInstrument = ES) -> tuple[Events, Manifest]:
    files = [shared_data / DEF_FILE, shared_data / MBO_FILE]
    return import_files("databento-mbo", files, inst, ImportOptions())


def _rebuild(events: Events, after_ns: int = 0) -> tuple[L2Book, list[int], int]:
    """The L2 book the events describe; spreads and crossed states after each event past
    ``after_ns`` whose next event has another timestamp (one venue event's end)."""
    book = L2Book()
    spreads: list[int] = []
    crossed = 0
    ts = events["exch_ts"]
    for i, e in enumerate(events.tolist()):
        kind, side, price, qty = e[2], e[3], e[4], e[5]
        if kind == CLEAR:
            book.clear()
        elif kind in (DEPTH, SNAPSHOT):
            book.set_level(side, price, qty)
        if e[0] < after_ns or (i + 1 < len(events) and ts[i + 1] == e[0]):
            continue
        if book.crossed():
            crossed += 1
        elif book.best_bid and book.best_ask:
            spreads.append(book.spread)
    return book, spreads, crossed


def test_the_es_hour_imports_quickly_with_the_readmes_figures(
    shared_data: Path, tmp_path: Path
) -> None:
    t0 = time.perf_counter()
    events, m = _es(shared_data)
    took = time.perf_counter() - t0
    assert took < 5.0, f"import took {took:.2f} s"
    ck = m.checks
    assert ck["records_read"] == 68_792
    assert ck["records_other_instruments"] == 0
    assert (
        ck["action_add"]
        + ck["action_cancel"]
        + ck["action_modify"]
        + ck["action_trade"]
        + ck["action_fill"]
        == 68_792
    )
    assert ck["orders"] == ck["action_add"] == 29_216
    assert m.warnings == {
        "tick_from_same_product_definition": 1,
        "trade_without_aggressor_side_0": 1,
    }

    snap = events[events["kind"] == SNAPSHOT]
    assert len(snap) == 8_725  # one level event per resting order of the snapshot
    assert events["kind"][0] == CLEAR
    live = events[~np.isin(events["kind"], [CLEAR, SNAPSHOT])]
    assert _ns("2023-12-25T22:00:00") <= live["exch_ts"][0] < _ns("2023-12-25T22:00:01")
    assert _ns("2023-12-25T23:59:59") <= live["exch_ts"][-1] < _ns("2023-12-26T00:00:00")
    assert np.all(snap["exch_ts"] < live["exch_ts"][0])  # stamped with their ts_event

    trades = events[events["kind"] == TRADE]
    assert len(trades) == 2_973
    assert np.all(trades["exch_ts"] >= _ns("2023-12-25T23:00:00"))  # continuous trading
    assert sorted(np.unique(trades["side"]).tolist()) == [-1, 0, 1]
    assert int((trades["side"] == 0).sum()) == 1  # the opening auction's print

    # the pre-open book may cross; after the open, never at the end of a venue event
    assert ck["crossed_book_events"] > 0
    assert ck["crossed_book_events_after_first_trade"] == 0
    assert ck["median_spread_ticks"] == 1
    book, spreads, crossed = _rebuild(events, after_ns=int(trades["exch_ts"][0]) + 1)
    assert statistics.median(spreads) == 1
    assert crossed == 0
    assert 0 < book.best_bid < book.best_ask
    assert (book.best_bid, book.best_ask) == (ck["final_best_bid"], ck["final_best_ask"])
    assert book.best_bid * 0.25 == pytest.approx(4810.0)

    store = EventStore.open(write_store(tmp_path / "es", events, m), verify=True)
    assert store.manifest.events == len(events)
    assert store.manifest.counts["trade"] == 2_973


def test_the_mbo_file_alone_finds_the_symbol_in_its_symbology(shared_data: Path) -> None:
    _, m = import_files("databento-mbo", [shared_data / MBO_FILE], ES, ImportOptions())
    assert m.warnings["tick_unchecked_no_definition"] == 1
    assert m.checks["records_read"] == 68_792


@pytest.mark.parametrize("tick", ["0.5", "0.125", "1"])
def test_a_tick_other_than_the_definitions_is_refused(shared_data: Path, tick: str) -> None:
    with pytest.raises(StoreError, match=r"min_price_increment 0\.25"):
        _es(shared_data, StoreInstrument("ESH4", tick, "1"))


def test_an_unknown_symbol_is_refused_naming_the_symbols_present(shared_data: Path) -> None:
    with pytest.raises(StoreError, match=r"'ESM4' is not in the files; symbols present: ESH4"):
        _es(shared_data, StoreInstrument("ESM4", "0.25", "1"))


@pytest.mark.parametrize("keep", [-1, -1000, 500_000, 200, 30])
def test_a_truncated_file_is_refused(shared_data: Path, tmp_path: Path, keep: int) -> None:
    bad = tmp_path / "esh4.mbo.dbn.zst"
    bad.write_bytes((shared_data / MBO_FILE).read_bytes()[:keep])
    with pytest.raises(StoreError, match="truncated"):
        import_files("databento-mbo", [shared_data / DEF_FILE, bad], ES, ImportOptions())


# --- synthetic DBN files -------------------------------------------------------------------

XYZ = StoreInstrument("XYZ", "0.25", "1")
P = 1_000_000_000  # 1.0 in DBN's fixed point
T0 = 1_700_000_000_000_000_000


def _msg(
    action: str, side: str, price: float, size: int, oid: int, dt: int, flags: int = dbn.F_LAST
) -> Any:
    return dbn.MBOMsg(
        publisher_id=1,
        instrument_id=7,
        ts_event=T0 + dt,
        order_id=oid,
        price=round(price * P),
        size=size,
        action=dbn.Action(action),
        side=dbn.Side(side),
        ts_recv=T0 + dt + 500,
        flags=flags,
    )


def _dbn(path: Path, records: list[Any]) -> Path:
    interval = SimpleNamespace(
        start_date=date(2023, 11, 14), end_date=date(2023, 11, 15), symbol="7"
    )
    meta = dbn.Metadata(
        dataset="GLBX.MDP3",
        schema=dbn.Schema.from_str("mbo"),
        start=T0,
        stype_in=dbn.SType.from_str("raw_symbol"),
        stype_out=dbn.SType.from_str("instrument_id"),
        symbols=["XYZ"],
        mappings=[SimpleNamespace(raw_symbol="XYZ", intervals=[interval])],
    )
    path.write_bytes(meta.encode() + b"".join(bytes(r) for r in records))
    return path


def _import(path: Path, inst: StoreInstrument = XYZ) -> tuple[Events, Manifest]:
    return import_files("databento-mbo", [path], inst, ImportOptions())


def _rows(events: Events) -> list[tuple[int, int, int, int]]:
    return [(int(e[2]), int(e[3]), int(e[4]), int(e[5])) for e in events.tolist()]


SNAP = dbn.F_SNAPSHOT


def test_orders_become_absolute_level_sizes(tmp_path: Path) -> None:
    f = _dbn(
        tmp_path / "a.dbn",
        [
            _msg("A", "B", 100.0, 2, 1, 0, SNAP),
            _msg("A", "A", 100.5, 4, 2, 0, SNAP | dbn.F_LAST),
            _msg("A", "B", 100.0, 3, 3, 10),  # same level: 2 + 3
            _msg("M", "B", 100.0, 1, 1, 20),  # order 1 shrinks in place: 5 - 1
            _msg("M", "B", 99.75, 3, 3, 30),  # order 3 moves: two levels change
            _msg("T", "A", 100.0, 1, 0, 40, 0),  # a sell aggressor
            _msg("F", "B", 100.0, 1, 1, 40, 0),  # the resting side's fill: no book change
            _msg("C", "B", 100.0, 1, 1, 40),  # ...the cancel that follows removes it
            _msg("C", "A", 100.5, 1, 2, 50),  # partial cancel
        ],
    )
    events, m = _import(f)
    assert _rows(events) == [
        (CLEAR, 0, 0, 0),
        (SNAPSHOT, 1, 400, 2),
        (SNAPSHOT, -1, 402, 4),
        (DEPTH, 1, 400, 5),
        (DEPTH, 1, 400, 4),
        (DEPTH, 1, 400, 1),
        (DEPTH, 1, 399, 3),
        (TRADE, -1, 400, 1),
        (DEPTH, 1, 400, 0),
        (DEPTH, -1, 402, 3),
    ]
    assert events["exch_ts"][3] == T0 + 10 and events["local_ts"][3] == T0 + 510
    assert m.checks["action_fill"] == 1 and m.checks["orders"] == 3
    assert m.checks["final_best_bid"] == 399 and m.checks["final_best_ask"] == 402
    assert m.warnings == {"tick_unchecked_no_definition": 1}


def test_a_cancel_of_an_unknown_order_is_counted(tmp_path: Path) -> None:
    f = _dbn(
        tmp_path / "a.dbn",
        [_msg("A", "B", 100.0, 2, 1, 0), _msg("C", "B", 100.0, 2, 99, 10)],
    )
    events, m = _import(f)
    assert m.warnings["cancel_unknown_order"] == 1
    assert _rows(events) == [(DEPTH, 1, 400, 2)]


def test_a_trade_without_a_side_is_side_0_and_counted(tmp_path: Path) -> None:
    events, m = _import(_dbn(tmp_path / "a.dbn", [_msg("T", "N", 100.0, 44, 0, 0)]))
    assert _rows(events) == [(TRADE, 0, 400, 44)]
    assert m.warnings["trade_without_aggressor_side_0"] == 1


def test_a_crossed_snapshot_is_refused(tmp_path: Path) -> None:
    f = _dbn(
        tmp_path / "a.dbn",
        [_msg("A", "B", 100.5, 1, 1, 0, SNAP), _msg("A", "A", 100.0, 1, 2, 0, SNAP)],
    )
    with pytest.raises(StoreError, match=r"snapshot .* is crossed"):
        _import(f)


def test_a_crossed_book_is_counted(tmp_path: Path) -> None:
    f = _dbn(tmp_path / "a.dbn", [_msg("A", "B", 100.5, 1, 1, 0), _msg("A", "A", 100.0, 1, 2, 1)])
    _, m = _import(f)
    assert m.checks["crossed_book_events"] == 1


def test_a_price_off_the_tick_grid_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a multiple of tick"):
        _import(_dbn(tmp_path / "a.dbn", [_msg("A", "B", 100.1, 1, 1, 0)]))


def test_a_record_cut_in_half_is_refused(tmp_path: Path) -> None:
    f = _dbn(tmp_path / "a.dbn", [_msg("A", "B", 100.0, 1, 1, 0), _msg("A", "B", 100.0, 1, 2, 1)])
    f.write_bytes(f.read_bytes()[:-20])
    with pytest.raises(StoreError, match="truncated: the last 36 bytes"):
        _import(f)


def test_not_a_dbn_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "a.dbn"
    f.write_text("exchange,symbol\n")
    with pytest.raises(StoreError, match="not a DBN file"):
        _import(f)
