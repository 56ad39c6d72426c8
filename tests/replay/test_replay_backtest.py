"""``flashmm backtest --data`` on a real recording: the live engine trades it within its limits,
deterministically, and reports what it assumed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cli.main import main
from flashmm.marketdata.store import BBO, EventStore

FIXED = ["--strategy", "fixed", "--half-spread-ticks", "1", "--order-qty", "0.01"]


def replay(store: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    rc = main(["backtest", "--data", str(store), "--no-report", "--json", *args])
    out = capsys.readouterr().out
    assert rc == 0, out
    result: dict[str, Any] = json.loads(out)
    return result


def test_fixed_strategy_on_real_btcusdt(
    real_store: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = real_store("btc-usdm-2024")
    s = replay(path, *FIXED, "--max-position", "0.05", capsys=capsys)
    store = EventStore.open(path)
    assert s["data_events"] == int((store.events["kind"] != BBO).sum())
    assert s["book_crossed_events"] == 0
    assert s["queue_model"] == "risk-averse" and s["latency_ms"] == 1.0
    assert s["strategy"] == "fixed"
    assert s["assumptions"]["market_impact"].startswith("none")
    assert s["fills"] > 20
    assert s["fills"] == s["fills_by_queue"] + s["fills_by_cross"]
    assert s["volume_base"] == pytest.approx(s["fills"] * 0.01)
    # the position cap (0.05 BTC) holds however the market moves
    assert abs(s["inventory_min_lots"]) <= 50 and abs(s["inventory_max_lots"]) <= 50
    assert abs(s["position_base"]) <= 0.05 + 1e-9
    again = replay(path, *FIXED, "--max-position", "0.05", capsys=capsys)
    for k in ("wall_s", "events_per_s", "cycle_p50_us", "cycle_p99_us"):
        s.pop(k), again.pop(k)
    assert again == s


def test_latency_and_queue_model_are_real_options(
    real_store: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = real_store("btc-usdm-2024")
    base = replay(path, *FIXED, capsys=capsys)
    slow = replay(path, *FIXED, "--latency-ms", "50", capsys=capsys)
    prob = replay(path, *FIXED, "--queue", "prob", capsys=capsys)
    assert slow["latency_ms"] == 50.0 and prob["queue_model"] == "prob"
    assert (slow["fills"], slow["pnl_total"]) != (base["fills"], base["pnl_total"])
    # the probabilistic model credits cancels ahead of us: more of our fills reach the front
    assert prob["fills_by_queue"] >= base["fills_by_queue"]


def test_glft_with_fees_reports_them(real_store: Any, capsys: pytest.CaptureFixture[str]) -> None:
    s = replay(
        real_store("btc-usdm-2024"),
        "--strategy", "glft", "--order-qty", "0.002", "--maker-fee-bps", "-0.5",
        capsys=capsys,
    )  # fmt: skip
    assert s["strategy"] == "glft"
    if s["fills"]:
        assert s["fees"] < 0  # a maker rebate is a negative fee
        assert s["fees"] == pytest.approx(-0.5e-4 * s["volume_quote"], rel=1e-6)


def test_report_states_the_assumptions(
    real_store: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        ["backtest", "--data", str(real_store("btc-usdm-2024")), *FIXED,
         "--report-dir", str(tmp_path / "r"), "--json"]
    )  # fmt: skip
    assert rc == 0
    capsys.readouterr()
    html = (tmp_path / "r" / "index.html").read_text()
    assert "no market impact" in html and "queue_model = risk-averse" in html
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["data_events"] > 0


def test_bad_replay_options_get_clear_errors(
    real_store: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(real_store("btc-usdm-2024"))
    cases = [
        (["--data", path, "--order-qty", "0.0001"], "--order-qty 0.0001 is below one lot"),
        (["--data", path, "--latency-ms", "-1"], "latency_ms must be >= 0"),
        (["--data", path, *FIXED, "--max-position", "nan"], "--max-position must be a positive"),
        (["--data", str(tmp_path)], "is not an event store"),
    ]
    for args, message in cases:
        assert main(["backtest", *args, "--no-report"]) == 2
        assert message in capsys.readouterr().err


def test_positions_sampled_never_exceed_the_cap(real_store: Any) -> None:
    from cli.replay import replay_limits
    from flashmm.config import load_settings
    from flashmm.config.quoting import QuoteModel, QuoteParams
    from hotpath.replay import ReplayConfig, run_replay

    store = EventStore.open(real_store("btc-usdm-2024"))
    q = QuoteParams(model=QuoteModel.GLFT, order_lots=5, levels=2)
    limits = replay_limits(load_settings(None), 0.005, 64_000.0, 0.02, None)
    r = run_replay(store, ReplayConfig(quoting=q, limits=limits, sample_every_s=0.2))
    pos = np.abs(np.array(r.series.position))
    assert pos.max() <= 20  # 0.02 BTC in 0.001 lots
    assert r.summary["max_position_notional"] <= limits.max_position_notional
