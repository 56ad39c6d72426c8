"""The hftbacktest oracle script (tests/replay/hftbacktest_oracle.py) on real BTCUSDT: it runs in
its own venv (``make oracle``) and answers sane figures for both queue models.

Timing (2 shared cores): each run takes about 6 s (converting the two files about 1.3 s, numba
compiling about 3.5 s, the strategy loop over ~418 k events about 0.04 s); the module runs the
script twice, about 12 s. Quotes are at the touch (half spread 0.5 tick), where the queue model
matters: one tick or more away, fills come only from prices trading through and both models agree.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ORACLE_PY = ROOT / ".venv-oracle" / "bin" / "python"
SCRIPT = Path(__file__).with_name("hftbacktest_oracle.py")
FILES = ["binance-usdm/btcusdt_20240718.gz", "binance-usdm/btcusdt_20240719.gz"]
ORDER_QTY = 0.01
OPTIONS = [
    "--tick", "0.1", "--lot", "0.001", "--half-spread-ticks", "0.5",
    "--order-qty", str(ORDER_QTY), "--requote-ms", "100", "--latency-ms", "1",
    "--maker-fee-bps", "-0.5", "--taker-fee-bps", "5",
]  # fmt: skip
QUEUES = ("risk-averse", "prob")


@pytest.fixture(scope="module")
def oracle(shared_data: Path) -> Any:
    """``oracle(queue)``: the script's JSON for that queue model (each run once per module)."""
    if not ORACLE_PY.is_file():
        pytest.skip(f"{ORACLE_PY.relative_to(ROOT)} missing: build it with `make oracle`")
    done: dict[str, dict[str, Any]] = {}

    def get(queue: str) -> dict[str, Any]:
        if queue not in done:
            files = [str(shared_data / f) for f in FILES]
            cmd = [str(ORACLE_PY), str(SCRIPT), "--files", *files, *OPTIONS, "--queue", queue]
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
            assert p.returncode == 0, p.stderr[-4000:]
            lines = p.stdout.strip().splitlines()
            assert len(lines) == 1, p.stdout[-4000:]
            done[queue] = json.loads(lines[0])
        return done[queue]

    return get


@pytest.mark.parametrize("queue", QUEUES)
def test_oracle_figures_are_sane(oracle: Any, queue: str) -> None:
    r = oracle(queue)
    assert r["queue"] == queue and r["order_qty"] == ORDER_QTY and r["half_spread_ticks"] == 0.5
    assert r["fills"] > 0
    assert r["buys"] + r["sells"] == r["fills"]
    # no partial fills: every fill is one whole order
    assert r["volume_base"] == pytest.approx(r["fills"] * ORDER_QTY, abs=1e-9)
    assert abs(r["position_base"]) <= r["volume_base"] + 1e-9
    assert r["position_base"] == pytest.approx((r["buys"] - r["sells"]) * ORDER_QTY, abs=1e-9)
    assert r["orders_submitted"] >= r["fills"]
    assert r["data_events"] > 100_000 and r["events_per_s"] > 0 and r["wall_s"] > 0
    # a maker rebate (all fills are of resting post-only orders): fees are negative
    assert r["fees"] < 0
    for key in ("balance", "equity_quote", "convert_s"):
        assert isinstance(r[key], float)


def test_prob_queue_fills_at_least_as_often_as_risk_averse(oracle: Any) -> None:
    averse, prob = oracle("risk-averse"), oracle("prob")
    assert prob["fills"] >= averse["fills"], (prob["fills"], averse["fills"])
    # the same data, strategy and clock either way
    assert prob["data_events"] == averse["data_events"]
