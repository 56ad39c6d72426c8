"""The demo's status screen, rendered from fixed data: the dashboard's panels (state, book
top, quotes, position against its limit, PnL, fills, cycle latency, model signal, chain,
workflows, alerts, log tail), the plain lines that scripts and tests read, the log file that
takes the children's stderr, and the scrape config generated for the demo's Prometheus."""

from __future__ import annotations

import io
import os
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from cli import demo_feeds, demo_panels, demo_plain, demo_prometheus, demo_screen
from cli.demo_board import Board, MarketView, WorkflowView

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def _status(**over: Any) -> dict[str, Any]:
    st: dict[str, Any] = {
        "symbol": "SEI/USDC",
        "state": "active",
        "best_bid": 4998,
        "best_ask": 5002,
        "our_bid": 4997,
        "our_ask": 5003,
        "position_lots": 3000,
        "realized": 1.25,
        "unrealized": -0.5,
        "fees": -0.05,  # a maker rebate
        "fills": 42,
        "signal": [1.0, 0.62],
        "cycle_p50_us": 812.4,
        "cycle_p99_us": 3301.0,
        "last_cycle_age_s": 0.12,
        "model": {
            "cycles": 500,
            "warmup_cycles": 20,
            "live_cycles": 470,
            "stale_cycles": 3,
            "reactive_cycles": 0,
            "live_share": 0.979,
            "age_p50_ms": 1.2,
            "age_p99_ms": 4.5,
        },
        "stores": {"postgres": True, "backlog": 17, "redis": True, "timeseries": False},
    }
    st.update(over)
    return st


def _view(symbol: str = "SEI/USDC", **over: Any) -> MarketView:
    kw: dict[str, Any] = {
        "symbol": symbol,
        "status": _status(symbol=symbol),
        "chain_open": 4,
        "balances": {"usei": 1_234_500_000, "uusdc": 9_876_000_000},
        "price_denom": "uusdc",
        "asset_denom": "usei" if symbol.startswith("SEI") else "uatom",
        "tick": Decimal("0.0001"),
        "lot": Decimal("1"),
        "position_limit": 2000.0,
        "model": {
            "model": "market-transformer-v1",
            "breaker_open": True,
            "breaker_reason": "slow: 1828 µs over budget 3x",
            "trips": 2,
            "latency_us": 812.0,
        },
    }
    kw.update(over)
    return MarketView(**kw)


def _text(board: Board, width: int = 200) -> str:
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    console.print(demo_panels.render(board))
    return console.export_text()


def _board(**over: Any) -> Board:
    kw: dict[str, Any] = {
        "elapsed": 63.0,
        "markets": [
            _view(),
            _view(
                "ATOM/USDC",
                status=_status(
                    symbol="ATOM/USDC",
                    state="halted",
                    our_bid=0,
                    our_ask=0,
                    position_lots=-3900,
                    model=None,
                ),
            ),
        ],
        "links": {"API": "http://127.0.0.1:8000", "Prometheus": "http://127.0.0.1:9999"},
        "workflows": [
            WorkflowView("EmergencyStop", "estop-abc", "COMPLETED", NOW - timedelta(seconds=30)),
            WorkflowView("TradingLifecycle", "lifecycle-SEI-USDC", "RUNNING", NOW),
        ],
        "alerts": [
            {
                "labels": {"alertname": "HotPathLatencyHigh", "market": "SEI/USDC"},
                "state": "pending",
                "activeAt": "2025-06-01T11:59:00.123456789Z",
            },
            {
                "labels": {
                    "alertname": "PredictionAccuracyLow",
                    "market": "SEI/USDC",
                    "horizon": "5s",
                },
                "state": "pending",
                "activeAt": "2025-06-01T11:59:30Z",
            },
            {
                "labels": {"alertname": "HotPathHalted", "market": "ATOM/USDC"},
                "state": "firing",
                "activeAt": "2025-06-01T11:59:50Z",
            },
        ],
        "log_tail": ['{"level": "WARNING", "msg": "model circuit breaker open"}'],
        "now": NOW,
    }
    kw.update(over)
    return Board(**kw)


def test_market_panels_show_state_book_quotes_position_pnl_fills_cycle_and_model() -> None:
    out = _text(_board())
    assert "SEI/USDC" in out and "ATOM/USDC" in out
    assert "active" in out and "halted" in out
    assert "0.4998 / 0.5002  spread 4 ticks" in out  # the book's top
    assert "0.4997 / 0.5003" in out  # our quotes
    assert "not quoting" in out  # the halted market
    # 3000 lots at a mid of 0.5 is 1,500 USDC of the 2,000 USDC limit
    assert "+3,000 lots  1,500.00 of 2,000 USDC limit (75%)" in out
    assert "-3,900 lots  1,950.00 of 2,000 USDC limit (98%)" in out
    assert "+0.800 USDC" in out  # net: 1.25 - 0.5 + 0.05 rebate
    assert "realized +1.250, unrealized -0.500, rebates +0.050" in out
    assert "42" in out
    assert "p50 812 µs  p99 3,301 µs" in out and "last 120 ms ago" in out
    assert "up +1.00 (confidence 0.62)" in out and "fresh 98% of cycles" in out
    assert "age p99 4.5 ms" in out and "stale 3" in out
    assert "off (no model configured)" in out
    assert "market-transformer-v1  inference 812 µs  breaker tripped 2x" in out
    assert "(last: slow: 1828 µs" in out
    assert "postgres up" in out and "timeseries down" in out
    assert "17 rows waiting to be written" in out


def test_chain_workflows_alerts_and_log_panels() -> None:
    out = _text(_board())
    assert "chain (localnet)" in out
    assert "1,234.50 usei" in out and "9,876.00 uusdc" in out
    assert "control plane: recent workflows" in out
    assert "EmergencyStop" in out and "COMPLETED" in out and "30 s ago" in out
    assert "lifecycle-SEI-USDC" in out and "RUNNING" in out
    assert "alerts (Prometheus)" in out
    lines = out.splitlines()
    halted = next(ln for ln in lines if "HotPathHalted" in ln)
    assert "firing" in halted and "ATOM/USDC" in halted and "10 s ago" in halted
    latency = next(ln for ln in lines if "HotPathLatencyHigh" in ln)
    assert "pending" in latency and "60 s ago" in latency
    assert lines.index(halted) < lines.index(latency)  # firing first
    assert "SEI/USDC horizon 5s" in out  # series of one alert told apart
    assert "model circuit breaker open" in out  # the log's tail, inside its panel
    assert "http://127.0.0.1:9999" in out  # the header's links


def test_alert_panel_says_when_nothing_fires_or_prometheus_is_missing() -> None:
    assert "none pending or firing" in _text(_board(alerts=[]))
    out = _text(_board(alerts=None, alerts_note="Prometheus is not running"))
    assert "Prometheus is not running" in out
    out = _text(_board(workflows=None, workflows_note="Temporal did not answer (RPCError)"))
    assert "Temporal did not answer (RPCError)" in out


def test_dead_and_starting_markets() -> None:
    dead = _view(exit_code=-9, status={})
    starting = _view("ATOM/USDC", status={})
    out = _text(_board(markets=[dead, starting]))
    assert "DEAD (exit -9), restarting" in out
    assert "starting..." in out
    assert "restarted 2x" in _text(_board(markets=[_view(restarts=2)]))


def test_narrow_terminal_still_renders_every_panel() -> None:
    out = _text(_board(), width=80)
    for title in ("SEI/USDC", "chain (localnet)", "control plane", "alerts (Prometheus)"):
        assert title in out


def test_plain_lines_keep_the_format_scripts_read() -> None:
    line = demo_plain.plain_line(_view(), 12.3)
    assert line.startswith("[  12.3s] SEI/USDC  active   ")
    assert "mkt 0.4998/0.5002 ours 0.4997/0.5003 pos +3000" in line
    assert "| chain: open 4 usei 1,234.50 uusdc 9,876.00" in line
    assert "stores PRt backlog 17" in line
    dead = demo_plain.plain_line(_view(exit_code=1), 1.0)
    assert "DEAD (exit 1), restarting | chain: open 4" in dead
    assert demo_plain.plain_line(_view(status={}), 1.0).endswith("starting...")


def test_display_prints_plain_lines_without_a_terminal(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with demo_screen.Display(False, {}, tmp_path / "log", "127.0.0.1:1", None) as show:
        show.update([_view(), _view("ATOM/USDC")], 5.0)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert all(ln.startswith("[") and "| chain: open" in ln for ln in lines)


def test_screen_redraws_in_place_on_a_terminal() -> None:
    buf = io.StringIO()
    screen = demo_screen.Screen(buf)
    screen.console = Console(file=buf, width=160, force_terminal=True, color_system=None)
    screen.live = type(screen.live)(
        console=screen.console, auto_refresh=False, redirect_stderr=False
    )
    with screen:
        screen.show(_board())
        screen.show(_board(elapsed=64.0))
    out = buf.getvalue()
    assert "\x1b[" in out and "64 s" in out  # cursor movement: the frame is redrawn


def test_stderr_goes_to_the_log_file_and_comes_back(tmp_path: Path) -> None:
    import subprocess

    log = tmp_path / "demo.log"
    before = os.fstat(2)
    with demo_screen.stderr_to(log):
        os.write(2, b"a warning\n")  # what sys.stderr writes to outside pytest
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('child\\n')"])
    after = os.fstat(2)
    assert (before.st_ino, before.st_dev) == (after.st_ino, after.st_dev)
    assert log.read_text().splitlines() == ["a warning", "child"]
    assert oct(log.stat().st_mode & 0o777) == oct(0o600)
    assert demo_feeds.log_tail(log, 1) == ["child"]
    assert demo_feeds.log_tail(tmp_path / "missing") == []


def test_prometheus_config_scrapes_the_demo_processes_with_the_project_rules() -> None:
    targets = {
        "flashmm-hotpath": ["127.0.0.1:1001", "127.0.0.1:1002"],
        "flashmm-localnet": ["127.0.0.1:1003"],
        "flashmm-worker": [],
    }
    doc = yaml.safe_load(demo_prometheus.config(targets, demo_prometheus.RULES, "127.0.0.1:9"))
    assert doc["rule_files"] == [str(demo_prometheus.RULES)]
    assert demo_prometheus.RULES.exists()
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in doc["scrape_configs"]}
    assert jobs == {
        "flashmm-hotpath": ["127.0.0.1:1001", "127.0.0.1:1002"],
        "flashmm-localnet": ["127.0.0.1:1003"],
        "prometheus": ["127.0.0.1:9"],
    }
    assert "rule_files" not in yaml.safe_load(demo_prometheus.config(targets, None, "x:1"))


def test_demo_parser_takes_plain() -> None:
    from cli.main import _parser

    args = _parser().parse_args(["demo", "--plain", "--duration", "1"])
    assert args.plain is True
    assert _parser().parse_args(["demo"]).plain is False
