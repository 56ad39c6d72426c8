"""The backtest report reads as a quant expects: every figure under a plain name with its
unit, charts over the whole run with our fills marked and legends off the data, the run's
assumptions (seed, preset, fees), and the parameters actually used in the market's units."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from flashmm.config.quoting import QuoteModel, QuoteParams
from flashmm.config.risk import RiskLimits
from flashmm.marketdata.store import (
    CLEAR,
    SNAPSHOT,
    TRADE,
    EventStore,
    Manifest,
    StoreInstrument,
    make_events,
    write_store,
)
from flashmm.sim.params import market_preset
from hotpath.backtest import BacktestConfig, BacktestResult, Series, run_backtest
from hotpath.quoting.touch_policy import Choice, Reason, TouchPolicyConfig
from hotpath.replay import ReplayConfig, run_replay, store_instrument
from hotpath.report import write_replay_report, write_report
from hotpath.report_charts import CHARTS, Units
from hotpath.report_labels import label_for, rows
from hotpath.report_run import backtest_params
from hotpath.report_series import MAX_POINTS, chart_data


@pytest.fixture(scope="module")
def ten_minutes() -> tuple[BacktestResult, BacktestConfig]:
    """The run the issue saw: 10 minutes of the default market at 0.5 (5,000 ticks)."""
    cfg = BacktestConfig(minutes=10.0)
    return run_backtest(cfg), cfg


@pytest.fixture(scope="module")
def thin_with_policy() -> tuple[BacktestResult, BacktestConfig]:
    cfg = BacktestConfig(
        minutes=0.5, market=market_preset("thin", seed=11), policy=TouchPolicyConfig()
    )
    return run_backtest(cfg), cfg


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[BacktestResult, Any, Any]:
    store = _synthetic_store(tmp_path_factory.mktemp("store"))
    inst = store_instrument(store, -0.5, 2.5)
    cfg = ReplayConfig(
        maker_fee_bps=-0.5,
        taker_fee_bps=2.5,
        quoting=QuoteParams(
            model=QuoteModel.FIXED, levels=1, order_lots=10, min_half_spread_ticks=1.0
        ),
        limits=RiskLimits(
            max_position_notional=1e7,
            max_order_notional=1e6,
            max_open_notional=1e7,
            daily_loss_limit=1e6,
            max_drawdown=1e6,
            vol_breaker_sigma=1e9,
        ),
    )
    return run_replay(store, cfg), inst, cfg


def _synthetic_store(d: Path) -> EventStore:
    """Three minutes of a BTCUSDT-like book: a snapshot every 100 ms around a random walk,
    trades at the touch in between."""
    rng = np.random.default_rng(5)
    cols: dict[str, list[int]] = {k: [] for k in ("exch_ts", "local_ts", "kind", "side")}
    cols["price"], cols["qty"] = [], []

    def add(ns: int, kind: int, side: int, price: int, qty: int) -> None:
        for k, v in zip(cols, (ns, ns + 2_000_000, kind, side, price, qty), strict=True):
            cols[k].append(v)

    mid = 600_000
    for i in range(1800):
        ns = 1_720_000_000_000_000_000 + i * 100_000_000
        mid += int(rng.integers(-2, 3))
        add(ns, CLEAR, 0, 0, 0)
        for lvl in range(5):
            add(ns, SNAPSHOT, 1, mid - 1 - lvl, 500)
            add(ns, SNAPSHOT, -1, mid + 1 + lvl, 500)
        side = 1 if i % 2 else -1
        add(ns + 50_000_000, TRADE, side, mid + side, int(rng.integers(50, 2000)))
    m = Manifest("test", StoreInstrument("BTCUSDT", "0.1", "0.001"), [])
    return EventStore.open(write_store(d / "s", make_events(cols), m))


def _all_policy_keys() -> list[str]:
    return [f"policy_{c.value}_share" for c in Choice] + [
        f"policy_reason_{r.value}" for r in Reason
    ]


def _section(html: str, start: str, end: str) -> str:
    return html[html.index(f'id="{start}"') : html.index(f'id="{end}"')]


def test_every_summary_key_has_a_label_with_a_unit(
    ten_minutes: Any, thin_with_policy: Any, replayed: Any, tmp_path: Path
) -> None:
    keys = set(ten_minutes[0].summary) | set(thin_with_policy[0].summary)
    keys |= set(replayed[0].summary) | set(_all_policy_keys())
    keys |= {"preset", "report", "order_qty_base"}  # what the CLI adds to its printout
    assert "spread_improvement_pct" in keys and "policy_join_share" in keys
    assert "fills_by_queue" in keys  # the replay's own figures are in the set
    raw = []
    for key in sorted(keys):
        lab = label_for(key)
        if lab is None or lab.name == key or not lab.unit:
            raw.append(key)
    assert raw == [], f"summary keys shown raw or without a unit: {raw}"
    # and the page shows the plain names, never the key as a name
    result, cfg = thin_with_policy
    html = write_report(result, cfg, tmp_path / "r").read_text()
    named = re.findall(r'<td title="([^"]+)">([^<]+)</td>', _section(html, "summary", "charts"))
    assert {k for k, _ in named} == set(result.summary) - {"assumptions"}
    assert all(name != key for key, name in named)
    assert "Other" not in {r.group for r in rows(result.summary, "SEI", "USDC", 1.0)}


def test_units_are_the_instruments_and_figures_are_formatted(ten_minutes: Any) -> None:
    result, _ = ten_minutes
    by_key = {r.key: r for r in rows(result.summary, "SEI", "USDC", 1.0)}
    assert by_key["pnl_total"].unit == "USDC" and by_key["volume_base"].unit == "SEI"
    assert by_key["spread_improvement_pct"].unit == "%"
    assert by_key["market_spread_bps_with_us"].unit == "bps"
    assert by_key["fill_rate"].value == f"{result.summary['fill_rate'] * 100:.1f}"
    # inventory in base units: lots × lot size
    lot = {r.key: r for r in rows(result.summary, "BTC", "USDT", 0.001)}
    assert lot["inventory_max_lots"].value == f"{result.summary['inventory_max_lots'] * 0.001:.4g}"
    assert lot["inventory_max_lots"].unit == "BTC"


def test_charts_span_the_whole_run(ten_minutes: Any, tmp_path: Path) -> None:
    result, cfg = ten_minutes
    t = result.series.t
    d = chart_data(result, cfg.instrument, cfg.limits.max_position_notional)
    assert d.end_min == pytest.approx((t[-1] - t[0]) / 60) == pytest.approx(10.0)
    for name, line in d.lines().items():
        assert line.x[0] == 0.0, name
        assert line.x[-1] == pytest.approx(10.0), name
    html = write_report(result, cfg, tmp_path / "r").read_text()
    assert "minute 0.0 to 10.0" in html
    for name in CHARTS:
        assert (tmp_path / "r" / name).read_bytes().startswith(b"\x89PNG")
        assert f'src="{name}"' in html


def test_long_runs_are_downsampled_not_truncated(ten_minutes: Any) -> None:
    result, cfg = ten_minutes
    n = 50_000  # about 14 hours of 1 s samples
    s = Series(
        t=[1000.0 + i for i in range(n)],
        mid=[5000.0] * n,
        best_bid=[4999] * n,
        best_ask=[5001] * n,
        our_bid=[4998] * n,
        our_ask=[5002] * n,
        position=[0] * n,
        equity=[0.0] * n,
    )
    s.equity[12_345] = -99.0  # a one-sample spike survives
    d = chart_data(BacktestResult(result.summary, s, []), cfg.instrument, 2000.0)
    assert len(d.equity.x) <= MAX_POINTS + 2
    assert d.equity.x[0] == 0.0 and d.equity.x[-1] == pytest.approx((n - 1) / 60)
    assert d.equity.y.min() == -99.0 and d.drawdown.y.min() == -99.0


def test_fills_are_marked(ten_minutes: Any, tmp_path: Path) -> None:
    result, cfg = ten_minutes
    d = chart_data(result, cfg.instrument)
    t0 = result.series.t[0]
    buys = [(t, p) for t, side, p, _ in result.fills if side > 0]
    sells = [(t, p) for t, side, p, _ in result.fills if side < 0]
    assert buys and sells
    assert len(d.buys.x) == len(buys) and len(d.sells.x) == len(sells)
    assert d.buys.x[0] == pytest.approx((buys[0][0] - t0) / 60)
    assert d.sells.y[-1] == pytest.approx(sells[-1][1] * cfg.instrument.tick)
    # spread out over the run, not only its end
    assert d.buys.x.min() < 1.0 and d.buys.x.max() > 9.0
    fig = CHARTS["quotes.png"](d, Units("SEI", "USDC"))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert f"we bought ({len(buys):,})" in labels and f"we sold ({len(sells):,})" in labels
    html = write_report(result, cfg, tmp_path / "r").read_text()
    assert f"{len(buys):,} buys and {len(sells):,} sells marked" in html


def test_legends_sit_outside_the_data_area(ten_minutes: Any) -> None:
    result, cfg = ten_minutes
    d = chart_data(result, cfg.instrument, cfg.limits.max_position_notional)
    u = Units("SEI", "USDC", max_drawdown=150.0, spread_without_us_bps=4.0)
    for name, draw in CHARTS.items():
        fig = draw(d, u)
        assert isinstance(fig.canvas, FigureCanvasAgg)
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        legend = ax.get_legend()
        assert legend is not None, name
        box, data = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
        assert box.x0 >= data.x1, f"{name}: legend overlaps the data"
        assert box.x1 <= fig.bbox.x1, f"{name}: legend cut off"


def test_assumptions_name_the_seed_preset_and_fees(thin_with_policy: Any, tmp_path: Path) -> None:
    result, cfg = thin_with_policy
    html = write_report(result, cfg, tmp_path / "r").read_text()
    a = _section(html, "assumptions", "parameters")
    assert "Random seed</td><td>11</td>" in a and "--seed 11" in a
    assert "preset thin" in a and "Changes to the preset</td><td>none" in a
    assert "maker -0.5 bps (a rebate), taker 2.5 bps" in a
    assert "2 ms" in a and "exact FIFO" in a and "touch policy on" in a
    assert "Backtest SEI/USDC: 0.5 simulated minutes, seed 11, preset thin" in html
    # a caller that knows the preset says so; a changed parameter is listed
    changed = BacktestConfig(minutes=0.5, market=market_preset("thin", seed=11, limit_k=0.05))
    html = write_report(result, changed, tmp_path / "c", preset="thin").read_text()
    assert "limit_k = 0.05 (preset: 0.03)" in html


def test_parameters_show_the_markets_real_start_price(ten_minutes: Any, tmp_path: Path) -> None:
    result, cfg = ten_minutes
    assert cfg.market.start_price == 5_000 and cfg.instrument.tick_size == Decimal("0.0001")
    market = {p.key: p for p in backtest_params(cfg)["Simulated market"]}
    assert market["start_price"].value == "0.5000 (5,000 ticks of 0.0001)"
    assert market["start_price"].unit == "USDC"
    assert market["limit_size_mean"].value == "200 (200 SEI)"
    html = write_report(result, cfg, tmp_path / "r").read_text()
    params = html[html.index('id="parameters"') :]
    assert "<code>start_price</code></td><td>0.5000 (5,000 ticks of 0.0001)</td><td>USDC" in params
    assert not re.search(r"(?<![\d.,])5000(?!\d)", params)  # never a bare tick count
    assert "0.5000 USDC (5,000 ticks)" in _section(html, "assumptions", "parameters")


def test_replay_report_states_the_recording_and_its_assumptions(
    replayed: Any, tmp_path: Path
) -> None:
    result, inst, cfg = replayed
    s = result.summary
    assert s["fills"] > 0
    html = write_replay_report(result, inst, cfg, tmp_path / "r").read_text()
    a = _section(html, "assumptions", "parameters")
    assert "no market impact" in html and "queue_model = risk-averse" in a
    assert "maker -0.5 bps (a rebate), taker 2.5 bps" in a
    assert "recorded data, replayed" in a and s["data_from_utc"] in a
    d = chart_data(result, inst, cfg.limits.max_position_notional)
    assert d.end_min == pytest.approx((result.series.t[-1] - result.series.t[0]) / 60)
    assert d.end_min > 2.9 and len(d.buys.x) + len(d.sells.x) == s["fills"]
    for name in CHARTS:
        assert (tmp_path / "r" / name).is_file()
