"""``flashmm`` import: sessions written with the recorder (by hand and by the real quote loop)
become the events that were recorded; recordings from before timestamps, sequence gaps,
crossed snapshots and cut files are refused or counted. Old files still replay."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from pathlib import Path
from typing import Any

import pytest

from flashmm.book.l2 import L2Book
from flashmm.domain.instrument import SEI_USDC
from flashmm.marketdata.importers import ImportOptions, import_files
from flashmm.marketdata.store import (
    CLEAR,
    DEPTH,
    GAP,
    SNAPSHOT,
    TRADE,
    Events,
    Manifest,
    StoreError,
    StoreInstrument,
)
from flashmm.ml.recording import SessionWriter, read, replay

INST = StoreInstrument("SEI/USDC", "0.0001", "0.1")


def _import(files: list[Path], allow_gaps: bool = False) -> tuple[Events, Manifest]:
    return import_files("flashmm", files, INST, ImportOptions(allow_gaps))


def _rows(events: Events) -> list[tuple[int, int, int, int, int]]:
    return [(int(e[0]), int(e[2]), int(e[3]), int(e[4]), int(e[5])) for e in events.tolist()]


def _session(records: list[list[Any]], directory: Path) -> tuple[list[Path], int]:
    """Write ``records`` with the real SessionWriter; returns the files and the offset from
    the records' monotonic ns to UTC ns (the C record's)."""
    w = SessionWriter(directory, "SEI_USDC")
    for r in records:
        w.add(r)
    w.close()
    clock = next(read(w.files[0]))
    assert clock[0] == "C"
    return w.files, clock[1] - clock[2]


M0 = 5_000_000_000  # a monotonic clock reading

SESSION: list[list[Any]] = [
    ["S", 7, [[1000, 30], [999, 10]], [[1002, 20]], M0],
    ["T", M0 + 100, 1002, 5, -1],
    ["D", 8, [[1, 1001, 4], [-1, 1002, 0]], M0 + 200],
    ["F", M0 + 250, 0.0],
    ["D", 9, [[-1, 1003, 6]], M0 + 300],
    ["T", M0 + 400, 1003, 2, 1],
]


def test_a_written_session_imports_as_what_was_recorded(tmp_path: Path) -> None:
    files, off = _session(SESSION, tmp_path)
    events, m = _import(files)
    assert _rows(events) == [
        (M0 + off, CLEAR, 0, 0, 0),
        (M0 + off, SNAPSHOT, 1, 1000, 30),
        (M0 + off, SNAPSHOT, 1, 999, 10),
        (M0 + off, SNAPSHOT, -1, 1002, 20),
        (M0 + 100 + off, TRADE, -1, 1002, 5),
        (M0 + 200 + off, DEPTH, 1, 1001, 4),
        (M0 + 200 + off, DEPTH, -1, 1002, 0),
        (M0 + 300 + off, DEPTH, -1, 1003, 6),
        (M0 + 400 + off, TRADE, 1, 1003, 2),
    ]
    assert (events["local_ts"] == events["exch_ts"]).all()
    assert int(events["exch_ts"][0]) > 1_600_000_000 * 10**9  # UTC, not monotonic
    assert m.checks["feature_samples"] == 1
    assert m.checks["records_D"] == 2 and m.checks["records_C"] == 1
    assert (m.checks["final_best_bid"], m.checks["final_best_ask"]) == (1001, 1003)
    assert m.warnings == {} and m.sequence_gaps == 0


def test_the_quote_loops_recording_imports_to_the_same_book(tmp_path: Path) -> None:
    from flashmm.sim.inprocess import InProcessVenue
    from flashmm.sim.params import MarketParams
    from hotpath.engine import MarketMaker
    from hotpath.loop import LoopConfig, QuoteLoop
    from hotpath.quoting.params import QuoteParams
    from hotpath.risk import RiskLimits

    async def run() -> None:
        mm = MarketMaker(SEI_USDC, QuoteParams(), RiskLimits())
        venue = InProcessVenue(SEI_USDC, MarketParams(seed=5, warmup_s=5))
        rec = SessionWriter(tmp_path, "SEI_USDC", max_bytes=4096)
        loop = QuoteLoop(mm, venue, LoopConfig(quote_hz=20, shutdown_timeout_s=1.0), recorder=rec)
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(1.5, stop.set)
        await asyncio.wait_for(loop.run(stop), 20)
        await venue.close()

    t0 = time.time_ns()
    asyncio.run(run())
    t1 = time.time_ns()
    files = sorted(tmp_path.glob("*.jsonl.gz"), key=lambda p: p.stat().st_mtime)
    events, m = _import(files)
    assert m.warnings == {} and m.sequence_gaps == 0
    assert m.checks["records_S"] >= 1 and m.checks["records_D"] > 10
    assert m.checks["feature_samples"] == sum(1 for _ in replay(files))
    assert t0 - 1e9 < events["exch_ts"][0] and events["exch_ts"][-1] < t1 + 1e9
    book = L2Book()  # the book the recording describes, record by record
    for f in files:
        for r in read(f):
            if r[0] == "S":
                book.clear()
                for side, levels in ((1, r[2]), (-1, r[3])):
                    for price, lots in levels:
                        book.set_level(side, price, lots)
            elif r[0] == "D":
                for side, price, lots in r[2]:
                    book.set_level(side, price, lots)
    bids, asks = book.snapshot()
    assert (m.checks["final_best_bid"], m.checks["final_best_ask"]) == (bids[0][0], asks[0][0])
    assert m.checks["crossed_book_events"] == 0


def _old_file(path: Path, records: list[list[Any]]) -> Path:
    """A recording as written before S/D records had a time (and no C record)."""
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode()))
    return path


OLD = [
    ["S", 7, [[1000, 30]], [[1002, 20]]],
    ["D", 8, [[1, 1001, 4]]],
    ["T", M0 + 100, 1002, 5, -1],
    ["F", M0 + 250, 0.0],
    ["D", 9, [[-1, 1003, 6]]],
    ["F", M0 + 350, 0.5],
]


def test_a_recording_from_before_timestamps_is_refused(tmp_path: Path) -> None:
    f = _old_file(tmp_path / "old.jsonl.gz", OLD)
    with pytest.raises(StoreError, match=r"old\.jsonl\.gz:1: this recording predates timestamps"):
        _import([f])


def test_old_and_new_recordings_replay_to_the_same_features(tmp_path: Path) -> None:
    old = _old_file(tmp_path / "old.jsonl.gz", OLD)
    ts = {0: M0, 1: M0 + 50, 4: M0 + 300}  # the new records' extra field
    new_dir = tmp_path / "new"
    files, _ = _session([[*r, ts[i]] if i in ts else r for i, r in enumerate(OLD)], new_dir)
    assert list(replay([old])) == list(replay(files))
    assert len(list(replay(files))) == 2


def test_a_sequence_gap_is_refused_or_marked(tmp_path: Path) -> None:
    records = [*SESSION[:3], ["D", 11, [[-1, 1003, 6]], M0 + 300]]
    files, off = _session(records, tmp_path)
    with pytest.raises(StoreError, match="sequence 11 after 8: records are missing"):
        _import(files)
    events, m = _import(files, allow_gaps=True)
    assert m.sequence_gaps == 1 and "sequence 11 after 8" in m.gap_examples[0]
    assert _rows(events)[-2:] == [
        (M0 + 300 + off, GAP, 0, 0, 0),
        (M0 + 300 + off, DEPTH, -1, 1003, 6),
    ]


def test_a_crossed_snapshot_is_refused(tmp_path: Path) -> None:
    files, _ = _session([["S", 1, [[1003, 1]], [[1002, 1]], M0]], tmp_path)
    with pytest.raises(StoreError, match=r":2: the snapshot is crossed"):
        _import(files)


def test_deltas_before_the_first_snapshot_are_skipped_and_counted(tmp_path: Path) -> None:
    files, _ = _session([["D", 3, [[1, 1000, 1]], M0], *SESSION[:2]], tmp_path)
    events, m = _import(files)
    assert m.warnings == {"deltas_before_first_snapshot_skipped": 1}
    assert events["kind"][0] == CLEAR


def test_a_cut_recording_keeps_what_was_whole_and_says_so(tmp_path: Path) -> None:
    records = [*SESSION[:1]] + [["T", M0 + i, 1002, 1 + i % 7, 1] for i in range(1, 3000)]
    files, _ = _session(records, tmp_path)
    raw = files[0].read_bytes()
    files[0].write_bytes(raw[: len(raw) // 2])
    events, m = _import(files)
    assert m.warnings == {"truncated_files": 1}
    assert "ends early" in m.gap_examples[0]
    assert 4 < len(events) < 3004 and events["kind"][-1] == TRADE


def test_time_going_back_keeps_the_recorded_order_and_is_counted(tmp_path: Path) -> None:
    files, off = _session([*SESSION[:2], ["T", M0 + 50, 1002, 1, 1]], tmp_path)
    events, m = _import(files)
    assert m.warnings == {"timestamps_backwards_clamped": 1}
    assert _rows(events)[-1] == (M0 + 100 + off, TRADE, 1, 1002, 1)
