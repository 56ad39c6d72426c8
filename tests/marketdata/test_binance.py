"""``binance-ws`` import: the real captures rebuild a sane book; bad captures are refused or
counted, never turned into a silently wrong book."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flashmm.marketdata.importers import ImportOptions, import_files
from flashmm.marketdata.store import (
    BBO,
    CLEAR,
    DEPTH,
    GAP,
    SNAPSHOT,
    TRADE,
    EventStore,
    StoreError,
    StoreInstrument,
    write_store,
)

BTC = StoreInstrument("BTCUSDT", "0.1", "0.001")
T0 = 1_721_347_000_000  # ms


def _line(local_ns: int, msg: dict[str, Any], stream: str | None = None) -> str:
    body = {"stream": stream, "data": msg} if stream else msg
    return f"{local_ns} {json.dumps(body)}\n"


def _snapshot(last_id: int, bids: list[list[str]], asks: list[list[str]]) -> dict[str, Any]:
    return {"lastUpdateId": last_id, "E": T0, "T": T0, "bids": bids, "asks": asks}


def _diff(first: int, last: int, prev: int, ms: int, b: Any = (), a: Any = ()) -> dict[str, Any]:
    return {
        "e": "depthUpdate", "E": T0 + ms, "T": T0 + ms, "s": "BTCUSDT",
        "U": first, "u": last, "pu": prev, "b": list(b), "a": list(a),
    }  # fmt: skip


def _trade(ms: int, price: str, qty: str, buyer_maker: bool) -> dict[str, Any]:
    return {
        "e": "trade", "E": T0 + ms, "T": T0 + ms, "s": "BTCUSDT", "t": ms,
        "p": price, "q": qty, "X": "MARKET", "m": buyer_maker,
    }  # fmt: skip


def _write(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt") as f:
        f.writelines(lines)
    return path


def _capture(tmp_path: Path, diffs: list[dict[str, Any]], name: str = "c.gz") -> Path:
    ns = T0 * 1_000_000
    lines = [_line(ns, _snapshot(100, [["100.0", "1.000"]], [["100.2", "2.000"]]))]
    for i, d in enumerate(diffs, 1):
        stream = "btcusdt@depth@0ms" if d["e"] == "depthUpdate" else "btcusdt@trade"
        lines.append(_line(ns + i * 1_000_000, d, stream))
    return _write(tmp_path / name, lines)


def _import(files: list[Path], inst: StoreInstrument = BTC, gaps: bool = False) -> Any:
    return import_files("binance-ws", files, inst, ImportOptions(allow_gaps=gaps))


def test_synthetic_capture_maps_to_store_rows(tmp_path: Path) -> None:
    f = _capture(
        tmp_path,
        [
            _diff(95, 99, 94, 1, b=[["99.9", "5.000"]]),  # before the snapshot's id: dropped
            _diff(99, 101, 98, 2, b=[["100.0", "0.500"]], a=[["100.3", "1.000"]]),
            _trade(3, "100.2", "0.250", buyer_maker=False),
            _diff(102, 102, 101, 4, a=[["100.2", "1.750"]]),
        ],
    )
    ev, m = _import([f])
    assert m.sequence_gaps == 0
    assert m.warnings["stale_diffs_dropped"] == 1
    kinds = ev["kind"].tolist()
    assert kinds == [CLEAR, SNAPSHOT, SNAPSHOT, DEPTH, DEPTH, TRADE, DEPTH]
    trade = ev[ev["kind"] == TRADE][0]
    assert (trade["side"], trade["price"], trade["qty"]) == (1, 1002, 250)  # buyer aggressed
    assert trade["exch_ts"] == (T0 + 3) * 1_000_000
    assert ev[3]["price"] == 1000 and ev[3]["qty"] == 500 and ev[3]["side"] == 1
    assert bool(np.all(np.diff(ev["exch_ts"]) >= 0))


def test_gap_is_refused_or_marked_and_counted(tmp_path: Path) -> None:
    f = _capture(
        tmp_path,
        [
            _diff(100, 101, 99, 1, b=[["100.0", "2.000"]]),
            _diff(105, 106, 104, 2, b=[["100.0", "3.000"]]),  # pu 104 ≠ previous u 101
        ],
    )
    with pytest.raises(StoreError, match="sequence gap"):
        _import([f])
    ev, m = _import([f], gaps=True)
    assert m.sequence_gaps == 1
    assert "pu" in m.gap_examples[0] or "U=105" in m.gap_examples[0]
    assert int((ev["kind"] == GAP).sum()) == 1


def test_crossed_snapshot_is_refused(tmp_path: Path) -> None:
    ns = T0 * 1_000_000
    f = _write(tmp_path / "x.gz", [_line(ns, _snapshot(1, [["100.5", "1"]], [["100.2", "1"]]))])
    with pytest.raises(StoreError, match="crossed"):
        _import([f])


def test_wrong_tick_names_the_price_and_line(tmp_path: Path) -> None:
    f = _capture(tmp_path, [_diff(100, 101, 99, 1, b=[["100.05", "1.000"]])])
    with pytest.raises(StoreError, match=r"c.gz:2: price 100.05 is not .* step 0.1"):
        _import([f])
    with pytest.raises(StoreError, match="not a non-negative multiple"):
        _import([f], StoreInstrument("BTCUSDT", "0.3", "0.001"))


def test_unsorted_capture_and_files_out_of_order_are_refused(tmp_path: Path) -> None:
    ns = T0 * 1_000_000
    snap = _line(ns, _snapshot(100, [["100.0", "1"]], [["100.2", "1"]]))
    later = _line(ns + 5, _diff(100, 101, 99, 1), "btcusdt@depth@0ms")
    earlier = _line(ns - 5, _diff(102, 102, 101, 2), "btcusdt@depth@0ms")
    f = _write(tmp_path / "u.gz", [snap, later, earlier])
    with pytest.raises(StoreError, match=r"u.gz:3: local timestamp .* not in capture order"):
        _import([f])
    a = _write(tmp_path / "a.gz", [snap, later])
    b = _write(tmp_path / "b.gz", [_line(ns - 10, _diff(102, 102, 101, 2), "btcusdt@depth@0ms")])
    with pytest.raises(StoreError, match="give the files in time order"):
        _import([a, b])


def test_truncated_capture_keeps_what_was_read_and_says_so(tmp_path: Path) -> None:
    diffs = [_diff(100 + i, 100 + i, 99 + i, i, b=[["100.0", f"{i}.000"]]) for i in range(1, 400)]
    f = _capture(tmp_path, diffs)
    data = f.read_bytes()
    cut = tmp_path / "cut.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    ev, m = _import([cut])
    assert m.warnings["truncated_files"] == 1
    assert "cut.gz ends early" in m.gap_examples[0]
    full, _ = _import([f])
    assert 0 < len(ev) < len(full)


def test_no_snapshot_and_wrong_symbol_are_refused(tmp_path: Path) -> None:
    ns = T0 * 1_000_000
    f = _write(tmp_path / "n.gz", [_line(ns, _diff(1, 2, 0, 1), "btcusdt@depth@0ms")])
    with pytest.raises(StoreError, match="no depth snapshot"):
        _import([f])
    g = _capture(tmp_path, [_diff(100, 101, 99, 1)])
    with pytest.raises(StoreError, match="not --symbol ETHUSDT"):
        _import([g], StoreInstrument("ETHUSDT", "0.1", "0.001"))


def test_real_usdm_capture_rebuilds_a_book_that_matches_binances_own_bbo(
    real_store: Any, shared_data: Path
) -> None:
    store = EventStore.open(real_store("btc-usdm-2024"), verify=True)
    m = store.manifest
    assert m.sequence_gaps == 0
    assert m.checks["crossed_book_events"] == 0
    assert m.checks["bbo_checked"] > 50
    assert m.checks["bbo_match_pct"] == 100.0
    assert 470 < (m.last_exch_ns - m.first_exch_ns) / 1e9 < 490  # "8 min" in the README
    assert m.counts["depth"] > 100_000 and m.counts["trade"] > 5_000
    assert [f.name for f in m.files] == ["btcusdt_20240718.gz", "btcusdt_20240719.gz"]
    src = shared_data / "binance-usdm" / "btcusdt_20240718.gz"
    import hashlib

    assert m.files[0].sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    ev = store.events
    assert bool(np.all(np.diff(ev["exch_ts"]) >= 0))
    assert int((ev["kind"] == BBO).sum()) == m.counts["bbo"]


def test_microsecond_captures_are_scaled_to_ns(real_store: Any) -> None:
    ev = EventStore.open(real_store("btc-usdm-2023")).events
    delay_ms = (ev["local_ts"] - ev["exch_ts"]) / 1e6
    # "about 3 ms behind the exchange": ns-scaled local stamps land within a second of it
    assert 0 < float(np.median(delay_ms)) < 1000


def test_spot_sizes_finer_than_the_lot_are_refused(shared_data: Path) -> None:
    files = [shared_data / "binance-spot/btcusdt_20240808.gz"]
    with pytest.raises(StoreError, match=r"size .* is not a non-negative multiple of size step"):
        _import(files, StoreInstrument("BTCUSDT", "0.01", "0.00001"))


def test_store_round_trip_and_tamper_detection(tmp_path: Path) -> None:
    f = _capture(tmp_path, [_diff(100, 101, 99, 1, b=[["100.0", "2.000"]])])
    ev, m = _import([f])
    out = write_store(tmp_path / "store", ev, m)
    s = EventStore.open(out, verify=True)
    assert s.manifest.events == len(ev) and s.instrument == BTC
    raw = bytearray((out / "events.npy").read_bytes())
    raw[-1] ^= 0xFF
    (out / "events.npy").write_bytes(bytes(raw))
    with pytest.raises(StoreError, match="sha256"):
        EventStore.open(out, verify=True)
    (out / "manifest.json").write_text("{")
    with pytest.raises(StoreError, match="not JSON"):
        EventStore.open(out)
