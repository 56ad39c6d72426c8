"""``tardis`` import: the real samples map to the store as documented; book and trade files
merge by exchange time; rows out of order, crossed snapshots, bad headers and cut files are
refused or counted."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from flashmm.marketdata.importers import ImportOptions, import_files
from flashmm.marketdata.store import (
    CLEAR,
    DEPTH,
    SNAPSHOT,
    TRADE,
    Events,
    Manifest,
    StoreError,
    StoreInstrument,
)
from flashmm.marketdata.tardis import BOOK_HEADER, TRADES_HEADER

BOOK = "tardis/deribit_incremental_book_L2_BTC-PERPETUAL.csv"
TRADES = "tardis/bitmex_trades_XBTUSD.csv"
DERIBIT = StoreInstrument("BTC-PERPETUAL", "0.5", "10")
SYM = StoreInstrument("BTC-PERPETUAL", "0.5", "1")


def _import(files: list[Path], inst: StoreInstrument = SYM) -> tuple[Events, Manifest]:
    return import_files("tardis", files, inst, ImportOptions())


def _rows(events: Events) -> list[tuple[int, int, int, int, int]]:
    return [(int(e[0]), int(e[2]), int(e[3]), int(e[4]), int(e[5])) for e in events.tolist()]


def test_the_deribit_book_sample_is_a_snapshot(shared_data: Path) -> None:
    events, m = _import([shared_data / BOOK, shared_data / TRADES], DERIBIT)
    assert events["kind"].tolist() == [CLEAR] + [SNAPSHOT] * 15
    assert np.all(events["side"][1:] == -1)  # the sample holds asks only
    assert events["price"][1] == 12_843 and events["qty"][1] == 1_864  # 6421.5 / 0.5, 18640 / 10
    assert events["exch_ts"][0] == 1_585_699_200_245_000_000
    assert events["local_ts"][0] == 1_585_699_200_355_684_000
    assert m.checks["book_rows"] == 15 and m.checks["rows_other_symbols"] == 10
    assert m.checks["final_best_ask"] == 12_843 and m.checks["final_best_bid"] == 0
    assert m.warnings == {"files_without_symbol_rows": 1}  # the BitMEX trades file
    assert [f.lines for f in m.files] == [16, 11]


def test_the_bitmex_trades_sample(shared_data: Path) -> None:
    events, m = _import([shared_data / TRADES], StoreInstrument("XBTUSD", "0.5", "1"))
    assert len(events) == 10 and np.all(events["kind"] == TRADE)
    assert np.all(events["side"] == -1)
    assert _rows(events[:2]) == [
        (1_583_020_803_145_000_000, TRADE, -1, 17_063, 2152),
        (1_583_020_803_276_000_000, TRADE, -1, 17_063, 1),
    ]
    assert m.checks["trades_rows"] == 10


def test_a_tick_off_the_samples_grid_is_refused_naming_the_line(shared_data: Path) -> None:
    with pytest.raises(StoreError, match=r"BTC-PERPETUAL\.csv:2: price 6421\.5 is not"):
        _import([shared_data / BOOK], StoreInstrument("BTC-PERPETUAL", "1", "10"))


def test_an_unknown_symbol_is_refused_naming_the_symbols_present(shared_data: Path) -> None:
    with pytest.raises(StoreError, match="symbols present: BTC-PERPETUAL, XBTUSD"):
        _import([shared_data / BOOK, shared_data / TRADES], StoreInstrument("ETH", "0.5", "1"))


# --- synthetic files -----------------------------------------------------------------------


def _csv(path: Path, header: str, rows: list[str]) -> Path:
    text = header + "\n" + "".join(r + "\n" for r in rows)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def _b(ts: int, snap: bool, side: str, price: str, amount: str, sym: str = "BTC-PERPETUAL") -> str:
    return f"deribit,{sym},{ts},{ts + 100},{str(snap).lower()},{side},{price},{amount}"


def _t(ts: int, side: str, price: str, amount: str) -> str:
    return f"deribit,BTC-PERPETUAL,{ts},{ts + 50},id{ts},{side},{price},{amount}"


def test_book_and_trades_merge_by_exchange_time(tmp_path: Path) -> None:
    book = _csv(
        tmp_path / "book.csv.gz",
        BOOK_HEADER,
        [
            _b(10, True, "bid", "100", "3"),
            _b(10, True, "ask", "100.5", "2"),
            _b(20, False, "ask", "100.5", "0"),
            _b(20, False, "ask", "101", "7"),
            _b(25, False, "bid", "99.5", "1", sym="OTHER"),
            _b(40, True, "bid", "99", "1"),  # a new snapshot: the book starts again
            _b(40, True, "ask", "99.5", "1"),
            _b(50, False, "bid", "99", "0"),
        ],
    )
    trades = _csv(
        tmp_path / "trades.csv",
        TRADES_HEADER,
        [_t(15, "buy", "100.5", "2"), _t(40, "sell", "99", "1"), _t(45, "unknown", "99", "4")],
    )
    events, m = _import([book, trades])
    us = 1000
    assert _rows(events) == [
        (10 * us, CLEAR, 0, 0, 0),
        (10 * us, SNAPSHOT, 1, 200, 3),
        (10 * us, SNAPSHOT, -1, 201, 2),
        (15 * us, TRADE, 1, 201, 2),
        (20 * us, DEPTH, -1, 201, 0),
        (20 * us, DEPTH, -1, 202, 7),
        (40 * us, CLEAR, 0, 0, 0),  # ties keep the file order: the book file came first
        (40 * us, SNAPSHOT, 1, 198, 1),
        (40 * us, SNAPSHOT, -1, 199, 1),
        (40 * us, TRADE, -1, 198, 1),
        (45 * us, TRADE, 0, 198, 4),
        (50 * us, DEPTH, 1, 198, 0),
    ]
    assert events["local_ts"][3] == 65 * us
    assert m.warnings == {"trade_without_aggressor_side_0": 1}
    assert m.checks["rows_other_symbols"] == 1
    assert m.checks["crossed_book_events"] == 0
    assert (m.checks["final_best_bid"], m.checks["final_best_ask"]) == (0, 199)


def test_rows_going_back_in_time_are_refused_naming_the_line(tmp_path: Path) -> None:
    f = _csv(
        tmp_path / "book.csv",
        BOOK_HEADER,
        [
            _b(10, True, "bid", "100", "3"),
            _b(30, False, "bid", "100", "1"),
            _b(20, False, "bid", "100", "2"),
        ],
    )
    with pytest.raises(StoreError, match=r"book\.csv:4: timestamp 20 goes back from 30"):
        _import([f])


def test_a_book_file_before_the_previous_one_is_refused(tmp_path: Path) -> None:
    a = _csv(tmp_path / "a.csv", BOOK_HEADER, [_b(50, True, "bid", "100", "3")])
    b = _csv(tmp_path / "b.csv", BOOK_HEADER, [_b(10, True, "bid", "100", "3")])
    with pytest.raises(StoreError, match=r"b\.csv:2: starts before the previous book file"):
        _import([a, b])


def test_a_crossed_snapshot_is_refused(tmp_path: Path) -> None:
    f = _csv(
        tmp_path / "book.csv",
        BOOK_HEADER,
        [
            _b(10, True, "bid", "101", "3"),
            _b(10, True, "ask", "100.5", "2"),
            _b(20, False, "bid", "100", "1"),
        ],
    )
    with pytest.raises(StoreError, match=r"book\.csv:4: the snapshot before this line is crossed"):
        _import([f])


def test_a_crossed_book_after_a_message_is_counted(tmp_path: Path) -> None:
    f = _csv(
        tmp_path / "book.csv",
        BOOK_HEADER,
        [
            _b(10, True, "bid", "100", "3"),
            _b(10, True, "ask", "100.5", "2"),
            _b(20, False, "bid", "100.5", "1"),  # one message crosses for a moment...
            _b(20, False, "ask", "100.5", "0"),  # ...and is sane at its end
            _b(30, False, "ask", "100", "1"),  # this one stays crossed
        ],
    )
    _, m = _import([f])
    assert m.checks["crossed_book_events"] == 1


def test_a_cut_gzip_file_is_refused(tmp_path: Path) -> None:
    rows = [_b(10 + i, i == 0, "bid", "100", str(i + 1)) for i in range(2000)]
    f = _csv(tmp_path / "book.csv.gz", BOOK_HEADER, rows)
    f.write_bytes(f.read_bytes()[:-200])
    with pytest.raises(StoreError, match="truncated or corrupt gzip"):
        _import([f])


def test_a_cut_last_line_is_dropped_and_counted(tmp_path: Path) -> None:
    f = _csv(
        tmp_path / "book.csv",
        BOOK_HEADER,
        [_b(10, True, "bid", "100", "3"), _b(20, False, "bid", "100", "15")],
    )
    f.write_bytes(f.read_bytes()[:-2])  # "...,100,1": a wrong size unless dropped
    events, m = _import([f])
    assert m.warnings == {"truncated_last_line_dropped": 1}
    assert _rows(events)[-1] == (10_000, SNAPSHOT, 1, 200, 3)


@pytest.mark.parametrize(
    ("header", "row", "message"),
    [
        ("exchange,symbol,price", None, "neither Tardis incremental_book_L2"),
        (BOOK_HEADER, "deribit,BTC-PERPETUAL,10,10,true,bid,100", r"\.csv:2: 7 fields"),
        (BOOK_HEADER, _b(10, True, "buy", "100", "1"), "book side 'buy'"),
        (BOOK_HEADER, _b(10, True, "bid", "100", "0.5"), "size 0.5 is not"),
        (BOOK_HEADER, "deribit,BTC-PERPETUAL,10,10,yes,bid,100,1", "is_snapshot 'yes'"),
        (TRADES_HEADER, _t(10, "bid", "100", "1"), "trade side 'bid'"),
        (TRADES_HEADER, "deribit,BTC-PERPETUAL,ten,10,x,buy,100,1", "invalid literal"),
    ],
)
def test_bad_rows_are_refused(tmp_path: Path, header: str, row: str | None, message: str) -> None:
    f = _csv(tmp_path / "x.csv", header, [row] if row else [])
    with pytest.raises(StoreError, match=message):
        _import([f])
