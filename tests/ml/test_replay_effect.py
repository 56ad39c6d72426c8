"""Trading effect of a signal on a real replay: adverse selection and markout from fills and
the exchange mid path, and signal on vs off over the same store and assumptions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from flashmm.marketdata.store import EventStore
from hotpath.replay import ReplayConfig, run_replay
from hotpath.replay_effect import adverse_selection, exchange_mids, trading_effect
from hotpath.risk import RiskLimits


def test_adverse_selection_and_markout_by_hand() -> None:
    ms = 1_000_000
    ts = np.arange(0, 2000 * ms, 10 * ms, dtype=np.int64)
    mids = np.full(len(ts), 100.0)
    mids[ts >= 1000 * ms] = 99.0  # the mid drops a tick at 1.0 s
    mids[ts >= 1400 * ms] = 97.0  # and two more at 1.4 s
    # (t_s on the replay clock, side, price, lots); t0 = 0, response latency 1 ms
    fills = [(0.951, 1, 100, 1), (0.951, -1, 101, 3)]  # exchange time 0.95 s
    out = adverse_selection(fills, 0, 1 * ms, ts, mids)
    # 100 ms later the mid is 99 (against the buy by 1, for the sell by 1), 500 ms later 97
    assert out["adverse_100ms_ticks"] == pytest.approx((1 * 1 - 1 * 3) / 4)
    assert out["adverse_500ms_ticks"] == pytest.approx((3 * 1 - 3 * 3) / 4)
    assert out["markout_100ms_ticks"] == pytest.approx(((99 - 100) * 1 + (101 - 99) * 3) / 4)
    assert out["against_share_500ms"] == 0.5 and out["fills_scored"] == 2
    late = adverse_selection([(1.99, 1, 100, 1)], 0, 1 * ms, ts, mids)
    assert late == {"fills_scored": 0}  # no mid 100 ms after the end of the data


class _Skew:
    """A stand-in signal: always 'up', fully confident (moves quotes up by the skew)."""

    uses_features = False

    def predict(self, features: list[float], ts_ns: int, mid: float) -> tuple[float, float]:
        return 1.0, 1.0

    def observe(self, ts_ns: int, mid: float) -> None:
        return None


def test_signal_on_vs_off_same_store_same_assumptions(
    real_store: Callable[[str], Path],
) -> None:
    store = EventStore.open(real_store("btc-usdm-2024"))
    ts, mids = exchange_mids(store)
    assert len(ts) > 200 and np.all(np.diff(ts) >= 0)
    assert np.all(np.diff(mids) != 0)  # one row per change of the exchange mid
    assert np.all(mids % 0.5 == 0) and np.all(np.abs(np.diff(mids)) < 500)
    cap = 0.1 * 70_000 * 1.05
    limits = RiskLimits(
        max_position_notional=cap, max_order_notional=cap, max_open_notional=2 * cap,
        daily_loss_limit=1e9, max_drawdown=1e9, vol_breaker_sigma=1e9,
    )  # fmt: skip
    cfg = ReplayConfig(quote_hz=10.0, limits=limits)
    out = trading_effect(store, cfg, _Skew())
    off, on = out["off"], out["on"]
    plain = run_replay(store, cfg).summary  # "off" is the plain replay, nothing else
    assert off["fills"] == plain["fills"] and off["pnl_total"] == pytest.approx(plain["pnl_total"])
    assert on["fills"] != off["fills"] or on["pnl_total"] != off["pnl_total"]
    assert out["on_minus_off"]["fills"] == on["fills"] - off["fills"]
    for f in (off, on):
        assert f["fills_scored"] > 0 and "adverse_500ms_ticks" in f
    assert out["assumptions"]["quote_hz"] == 10.0
