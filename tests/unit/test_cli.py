"""The ``flashmm`` CLI: help, backtest (JSON and report), research as-table, config errors, demo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cli.main import main

REPO = Path(__file__).resolve().parents[2]
SUBCOMMANDS = ("demo", "backtest", "research", "config")
SUMMARY_KEYS = {
    "pnl_total",
    "pnl_realized",
    "fees",
    "fills",
    "volume_base",
    "avg_quoted_spread_bps",
    "avg_market_spread_bps",
    "fill_rate",
    "inventory_std_lots",
    "max_drawdown",
    "risk_denials",
}
WALL_CLOCK_KEYS = {"wall_s", "events_per_s", "cycle_p50_us", "cycle_p99_us"}
AS_COLUMNS = {"spread", "profit_mean", "profit_std", "q_mean", "q_std"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.upper().startswith("FLASHMM_"):
            monkeypatch.delenv(key)
    monkeypatch.delenv("FLASHMM_CONFIG", raising=False)


def _clean_subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("FLASHMM_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, object]:
    assert main(argv) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1, out  # exactly one JSON object on one line
    obj = json.loads(lines[0])
    assert isinstance(obj, dict)
    return obj


# --- help -------------------------------------------------------------------------------


def test_help_lists_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ei:
        main(["--help"])
    assert ei.value.code == 0
    out = capsys.readouterr().out
    assert "usage: flashmm" in out
    for cmd in SUBCOMMANDS:
        assert cmd in out


def test_no_subcommand_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ei:
        main([])
    assert ei.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_help_as_module_subprocess() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "cli", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        env=_clean_subprocess_env(),
    )
    assert r.returncode == 0, r.stderr
    for cmd in SUBCOMMANDS:
        assert cmd in r.stdout
    assert "config.example.yaml" in r.stdout


# --- backtest ---------------------------------------------------------------------------

BACKTEST = ["backtest", "--minutes", "1", "--seed", "3", "--json", "--no-report"]


def test_backtest_json_has_documented_keys(capsys: pytest.CaptureFixture[str]) -> None:
    s = _run_json(capsys, BACKTEST)
    missing = SUMMARY_KEYS - s.keys()
    assert not missing, missing
    assert "report" not in s  # --no-report
    assert s["seed"] == 3
    assert s["minutes"] == 1.0
    assert isinstance(s["fills"], int)
    assert s["fills"] >= 0
    assert isinstance(s["risk_denials"], dict)
    assert s["volume_base"] >= 0
    assert 0.0 <= s["fill_rate"] <= 1.0
    assert s["max_drawdown"] >= 0
    assert s["inventory_std_lots"] >= 0
    # quoted spread is at least one tick and comparable to the market's
    assert s["avg_quoted_spread_bps"] > 0
    assert s["avg_market_spread_bps"] > 0
    # pnl_total = realized + unrealized - fees
    assert s["pnl_total"] == pytest.approx(s["pnl_realized"] + s["pnl_unrealized"] - s["fees"])


def test_backtest_same_seed_is_deterministic(capsys: pytest.CaptureFixture[str]) -> None:
    a = _run_json(capsys, BACKTEST)
    b = _run_json(capsys, BACKTEST)
    for k in WALL_CLOCK_KEYS:
        assert k in a
        a.pop(k)
        b.pop(k)
    assert a == b


def test_backtest_different_seed_differs(capsys: pytest.CaptureFixture[str]) -> None:
    a = _run_json(capsys, BACKTEST)
    b = _run_json(capsys, ["backtest", "--minutes", "1", "--seed", "4", "--json", "--no-report"])
    assert b["seed"] == 4
    keys = SUMMARY_KEYS - {"risk_denials"}
    assert any(a[k] != b[k] for k in keys)


def test_backtest_human_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--minutes", "0.5", "--seed", "3", "--no-report"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("backtest SEI/USDC: 0.5 simulated minutes, seed 3")
    assert "pnl_total" in out


def test_backtest_writes_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "rep"
    s = _run_json(
        capsys,
        ["backtest", "--minutes", "1", "--seed", "3", "--json", "--report-dir", str(out_dir)],
    )
    index = out_dir / "index.html"
    assert Path(str(s["report"])) == index
    assert index.is_file()
    pngs = sorted(p.name for p in out_dir.glob("*.png"))
    assert pngs == ["drawdown.png", "equity.png", "inventory.png", "quotes.png", "spread.png"]
    for name in pngs:
        data = (out_dir / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert len(data) > 1000
    html = index.read_text()
    for name in pngs:
        assert name in html


def test_backtest_bad_minutes_is_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--minutes", "0", "--no-report"]) == 2
    assert "minutes" in capsys.readouterr().err


# --- research ---------------------------------------------------------------------------


def test_research_as_table_json(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["research", "as-table", "--gamma", "0.1", "--paths", "200", "--seed", "1", "--json"]
    r = _run_json(capsys, argv)
    assert set(r) == {"inventory", "symmetric"}
    for name in ("inventory", "symmetric"):
        assert set(r[name]) == AS_COLUMNS  # type: ignore[arg-type]
        row = r[name]
        assert isinstance(row, dict)
        assert all(isinstance(v, float) for v in row.values())
        assert row["spread"] > 0
        assert row["profit_std"] >= 0
        assert row["q_std"] >= 0
    # the inventory strategy's point: less inventory and profit dispersion than symmetric
    assert r["inventory"]["q_std"] < r["symmetric"]["q_std"]  # type: ignore[index]
    assert r["inventory"]["profit_std"] < r["symmetric"]["profit_std"]  # type: ignore[index]
    assert _run_json(capsys, argv) == r  # seeded


def test_research_as_table_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["research", "as-table", "--paths", "50", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "inventory" in out
    assert "symmetric" in out


# --- config -----------------------------------------------------------------------------


def test_config_json_prints_effective_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("hotpath:\n  quote_hz: 8\n")
    s = _run_json(capsys, ["--config", str(cfg), "config", "--json"])
    assert s["hotpath"]["quote_hz"] == 8.0  # type: ignore[index]
    assert s["markets"][0]["symbol"] == "SEI/USDC"  # type: ignore[index]


def test_bad_config_file_exit_2_names_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("hotpath:\n  quote_hz: -3\n")
    assert main(["--config", str(cfg), "config"]) == 2
    captured = capsys.readouterr()
    assert "configuration error" in captured.err
    assert "hotpath.quote_hz" in captured.err
    assert captured.out == ""


def test_bad_config_stops_backtest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("markets:\n  - symbol: NOSLASH\n")
    rc = main(["--config", str(cfg), "backtest", "--minutes", "1", "--no-report", "--json"])
    assert rc == 2
    captured = capsys.readouterr()
    assert "markets.0.symbol" in captured.err
    assert captured.out == ""


def test_missing_config_file_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.yaml"
    assert main(["--config", str(missing), "config"]) == 2
    assert "does not exist" in capsys.readouterr().err


# --- demo -------------------------------------------------------------------------------


def test_sim_demo_runs_and_leaves_no_orders() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "cli", "demo", "--sim", "--duration", "2", "--seed", "5"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        env=_clean_subprocess_env(),
    )
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert lines[0].startswith("flashmm demo: 2 market(s)")
    status = [ln for ln in lines if ln.startswith("[")]
    assert len(status) >= 4
    assert any("SEI/USDC" in ln for ln in status)
    assert any("ATOM/USDC" in ln for ln in status)
    stopped = [ln for ln in lines if ": stopped" in ln]
    assert len(stopped) == 2
    assert all(ln.endswith("open orders left 0") for ln in stopped)


def test_platform_demo_trades_talks_to_the_cli_and_stops_cleanly(tmp_path: Path) -> None:
    """The README's commands reach the running demo through its profile (encrypted, no
    traceback); an interrupt stops everything in order with one line per process, exit 0,
    no order left on chain, and nothing left behind (profile, temporary folder)."""
    profile_path = tmp_path / "demo-profile.json"
    env = {**_clean_subprocess_env(), "FLASHMM_PROFILE": str(profile_path)}
    demo = subprocess.Popen(
        [sys.executable, "-m", "cli", "demo", "--duration", "90"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    try:
        end = time.monotonic() + 60
        while not profile_path.exists() and demo.poll() is None and time.monotonic() < end:
            time.sleep(0.2)
        assert profile_path.exists(), "the demo wrote no profile"
        cli_env = {**_clean_subprocess_env(), "FLASHMM_PROFILE": str(profile_path)}

        def flashmm(*argv: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "cli", *argv],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=REPO,
                env=cli_env,
            )

        api = json.loads(profile_path.read_text())["api_url"]
        with urllib.request.urlopen(f"{api}/docs", timeout=10) as r:  # served in the demo
            assert r.status == 200 and b"swagger" in r.read().lower()
        status = flashmm("market", "status", "SEI/USDC")
        assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr
        assert "using the running demo" in status.stderr
        assert json.loads(status.stdout)["market"] == "SEI/USDC"
        stop = flashmm("estop", "--market", "SEI/USDC", "--reason", "drill from the profile")
        assert stop.returncode == 0 and "Traceback" not in stop.stderr, stop.stderr
        assert json.loads(stop.stdout)["markets"][0]["hotpath_halted"] is True
        resumed = flashmm("market", "resume", "SEI/USDC", "--reason", "drill over")
        assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stderr
        assert json.loads(resumed.stdout)["state"] == "TRADING"
        time.sleep(2)
        demo.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the demo
        out, err = demo.communicate(timeout=90)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 0, err
    assert "Traceback" not in err, err
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines[0].startswith("flashmm demo: localnet flashmm-local-1 at http://127.0.0.1:")
    live = [ln for ln in lines if ln.startswith("[") and "| chain: open" in ln]
    assert any("SEI/USDC" in ln for ln in live) and any("ATOM/USDC" in ln for ln in live)
    accounts = [ln for ln in lines if ", account sei1" in ln and ": contract sei1" in ln]
    assert len(accounts) == 2, lines[:20]  # the banner names what the chain queries need
    summary = lines[lines.index("flashmm demo: stopping") + 1 :]
    names = [ln.split(":")[0] for ln in summary]
    assert names[:2] == ["api", "worker"], summary  # no new commands, then the hot paths
    # the chain after everything that trades on it; stores the demo started itself (none
    # when the project's own were already up) after the chain
    tail = names[names.index("localnet") :]
    assert tail in (["localnet"], ["localnet", "stores"]), summary
    assert names.index("localnet") > max(names.index("SEI/USDC"), names.index("ATOM/USDC"))
    assert {"SEI/USDC", "ATOM/USDC", "temporal"} <= set(names), summary
    hot = [ln for ln in summary if ln.startswith(("SEI/USDC", "ATOM/USDC"))]
    assert len(hot) == 2 and all(ln.endswith("open orders left on chain 0") for ln in hot)
    assert not profile_path.exists()
    run_dir = Path(out.split("password in ", 1)[1].split(";", 1)[0]).parent
    assert run_dir.name.startswith("flashmm-demo-") and not run_dir.exists()


def test_an_estop_without_the_codec_key_warns_that_workers_will_refuse_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLASHMM_CODEC_KEYS", raising=False)
    monkeypatch.setenv("FLASHMM_CONTROL__TEMPORAL_ADDRESS", "127.0.0.1:1")  # nothing there
    with pytest.raises(Exception):  # noqa: B017 (no server: only the warning matters here)
        main(["estop", "--market", "SEI/USDC", "--reason", "no key"])
    err = capsys.readouterr().err
    assert "no FLASHMM_CODEC_KEYS" in err and "/v1/emergency-stop" in err
