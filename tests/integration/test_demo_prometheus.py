"""``flashmm demo`` runs a Prometheus with the project's alerting rules: its URL is in the
banner, every rule of ``deploy/prometheus/alerts.yml`` is loaded and evaluates healthy, the
hot paths (and the other processes the demo starts) are scraped, and it is stopped in the
ordered shutdown with its own summary line, before the localnet. An emergency stop makes
``HotPathHalted`` fire there, where the dashboard's alert panel reads it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "alerts.yml"


def _installable() -> bool:
    """scripts/system-deps.sh installs Debian's prometheus package when it is missing."""
    text = (REPO / "scripts" / "system-deps.sh").read_text()
    return "command -v prometheus" in text and "need+=(prometheus)" in text


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def test_demo_prometheus_loads_the_rules_and_scrapes_the_hot_paths(tmp_path: Path) -> None:
    if shutil.which("prometheus") is None:
        if _installable():
            pytest.fail("prometheus is not installed: run scripts/system-deps.sh (as root)")
        pytest.skip("no prometheus binary, and scripts/system-deps.sh would not install it")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("FLASHMM_")}
    env |= {
        "PYTHONUNBUFFERED": "1",
        "FLASHMM_PROFILE": str(tmp_path / "profile.json"),
        "FLASHMM_STORES__ENABLED": "false",  # not what this test is about; faster
    }
    demo = subprocess.Popen(
        [sys.executable, "-m", "cli", "demo", "--duration", "120"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env=env,
    )
    lines: list[str] = []

    def read() -> None:
        assert demo.stdout is not None
        lines.extend(demo.stdout)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        end = time.monotonic() + 60
        url = ""
        while not url and time.monotonic() < end and demo.poll() is None:
            m = re.search(r"  Prometheus: (http://127\.0\.0\.1:\d+)  \(rules ", "".join(lines))
            url = m.group(1) if m else ""
            time.sleep(0.2)
        assert url, "".join(lines)[-3000:]
        hotpaths = set(
            re.findall(r"  \S+/USDC: metrics http://(127\.0\.0\.1:\d+)/metrics", "".join(lines))
        )
        assert len(hotpaths) == 2

        want = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
        rules: dict[str, dict[str, Any]] = {}
        up: dict[str, str] = {}
        end = time.monotonic() + 25  # a scrape and an evaluation every 5 s
        while time.monotonic() < end:
            groups = _get(f"{url}/api/v1/rules")["data"]["groups"]
            rules = {r["name"]: r for g in groups for r in g["rules"]}
            targets = _get(f"{url}/api/v1/targets")["data"]["activeTargets"]
            up = {t["labels"]["instance"]: t["health"] for t in targets}
            hot_up = all(up.get(h) == "up" for h in hotpaths)
            if hot_up and rules and all(r["health"] == "ok" for r in rules.values()):
                break
            time.sleep(1)
        assert set(rules) == want
        bad = {
            n: (r["health"], r.get("lastError")) for n, r in rules.items() if r["health"] != "ok"
        }
        assert not bad
        assert all(up.get(h) == "up" for h in hotpaths), up
        jobs = {t["labels"]["job"]: t["health"] for t in targets}
        assert {"flashmm-hotpath", "flashmm-localnet", "flashmm-worker", "flashmm-api"} <= set(jobs)
        # an emergency stop halts the market: HotPathHalted fires (what the alert panel shows)
        stop = subprocess.run(
            [sys.executable, "-m", "cli", "estop", "--market", "SEI/USDC", "--reason", "t"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
            env=env,
        )
        assert stop.returncode == 0, stop.stderr
        firing: list[dict[str, Any]] = []
        end = time.monotonic() + 30
        while not firing and time.monotonic() < end:
            alerts = _get(f"{url}/api/v1/alerts")["data"]["alerts"]  # what the screen reads
            firing = [
                a
                for a in alerts
                if a["labels"]["alertname"] == "HotPathHalted" and a["state"] == "firing"
            ]
            time.sleep(1)
        assert [a["labels"]["market"] for a in firing] == ["SEI/USDC"], alerts
        # the worker's own metrics and its Temporal SDK metrics (the temporal_* rules' data)
        targets = _get(f"{url}/api/v1/targets")["data"]["activeTargets"]
        worker = [t["health"] for t in targets if t["labels"]["job"] == "flashmm-worker"]
        assert worker == ["up", "up"], targets
        sdk = _get(f"{url}/api/v1/query?query=count(%7B__name__%3D~%22temporal_.%2B%22%7D)")
        assert sdk["data"]["result"] and float(sdk["data"]["result"][0]["value"][1]) > 0
        demo.send_signal(signal.SIGINT)
        demo.wait(90)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    reader.join(10)
    out = [ln.rstrip("\n") for ln in lines if ln.strip()]
    assert demo.returncode == 0, "\n".join(out[-40:])
    summary = out[out.index("flashmm demo: stopping") + 1 :]
    names = [ln.split(":")[0] for ln in summary]
    assert "prometheus: stopped (exit 0)" in summary, summary
    assert names[-1] == "localnet" and names.index("prometheus") > names.index("SEI/USDC")
