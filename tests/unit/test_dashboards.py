"""Grafana dashboards and provisioning under deploy/grafana/.

Every dashboard must be a valid JSON model whose queries select only metrics the code exports
(or the ML issue is adding; see ``ML_ISSUE_METRICS`` in ``test_alert_rules.py``). With
promtool installed, every query is also parsed as PromQL.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hotpath.metrics import HotPathCollector
from tests.unit.test_alert_rules import (
    ML_ISSUE_METRICS,
    PROMTOOL,
    ROOT,
    promql_metric_names,
    requires_promtool,
    unknown_metric_names,
)

GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS_DIR = GRAFANA / "dashboards"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "flashmm.yml"
# where deploy/grafana/dashboards is mounted in the Grafana container (see flashmm.yml)
DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards/flashmm"

DATASOURCE_REF = "${datasource}"
MARKET_QUERY = "label_values(flashmm_position_lots, market)"
DASHBOARD_FILES = sorted(DASHBOARDS_DIR.glob("*.json"))


def _dashboard(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target, annotation and query variable."""
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield (
                f"panel {panel['id']} {panel.get('title')!r} {target.get('refId')}",
                target["expr"],
            )
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            yield f"annotation {annotation['name']!r}", annotation["expr"]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            yield (
                f"variable {variable['name']}",
                query["query"] if isinstance(query, dict) else query,
            )


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def test_dashboards_exist() -> None:
    assert DASHBOARD_FILES, f"no dashboards in {DASHBOARDS_DIR}"


def test_dashboard_uids_are_unique() -> None:
    uids = [_dashboard(p)["uid"] for p in DASHBOARD_FILES]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=_ids(DASHBOARD_FILES))
def test_dashboard_model(path: Path) -> None:
    d = _dashboard(path)
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", d["uid"])
    assert d["title"] and 36 <= d["schemaVersion"] <= 41
    assert d.get("id") is None  # provisioned dashboards must not carry a database id
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    market = variables["market"]
    assert market["type"] == "query"
    assert market["datasource"] == {"type": "prometheus", "uid": DATASOURCE_REF}
    query = market["query"]
    assert (query["query"] if isinstance(query, dict) else query) == MARKET_QUERY
    assert market["definition"] == MARKET_QUERY
    assert market["multi"] and market["includeAll"]


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=_ids(DASHBOARD_FILES))
def test_dashboard_panels(path: Path) -> None:
    d = _dashboard(path)
    panels = list(_panels(d["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in panels:
        where = f"{path.name} panel {panel['id']} {panel.get('title')!r}"
        grid = panel["gridPos"]
        assert grid["w"] >= 1 and grid["x"] + grid["w"] <= 24, where
        if panel["type"] == "row":  # a row groups panels; it has no queries of its own
            continue
        targets = panel.get("targets", [])
        assert targets, f"{where}: no targets"
        assert panel["datasource"]["uid"] == DATASOURCE_REF, where
        ref_ids = [t["refId"] for t in targets]
        assert len(ref_ids) == len(set(ref_ids)), where
        for target in targets:
            assert target["datasource"]["uid"] == DATASOURCE_REF, where
            assert target.get("expr", "").strip(), f"{where}: empty expr"


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=_ids(DASHBOARD_FILES))
def test_dashboard_queries_use_exported_metrics(path: Path) -> None:
    d = _dashboard(path)
    # the hot path's series carry a market label (and so do the ML-issue metrics)
    per_market = tuple(
        [f.name for f in HotPathCollector(lambda: ()).collect()] + list(ML_ISSUE_METRICS)
    )
    for where, expr in _queries(d):
        assert promql_metric_names(expr), f"{path.name} {where}: no metric in {expr!r}"
        unknown = unknown_metric_names(expr)
        assert not unknown, f"{path.name} {where}: unknown metrics {sorted(unknown)}"
        # per-market series follow the dashboard's market selector
        selects_market = any(name.startswith(per_market) for name in promql_metric_names(expr))
        if selects_market and not where.startswith("variable"):
            assert '$market"' in expr, f"{path.name} {where}: ignores $market: {expr}"


def _as_promql(expr: str) -> str:
    """Grafana query -> plain PromQL: variables replaced by values of the right kind."""
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "1m")
    expr = expr.replace("$__range", "1h")
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


@requires_promtool
def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    rules: list[dict[str, Any]] = []
    for path in DASHBOARD_FILES:
        for where, expr in _queries(_dashboard(path)):
            if expr.startswith("label_values("):
                continue
            rules.append(
                {
                    "record": f"dashboard:query:{len(rules)}",
                    "expr": _as_promql(expr),
                    "labels": {"source": f"{path.name} {where}"},
                }
            )
    rule_file = tmp_path / "dashboard_queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    assert PROMTOOL is not None
    proc = subprocess.run(
        [PROMTOOL, "check", "rules", str(rule_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_unknown_dashboard_metric_is_rejected() -> None:
    # the ML-issue allowance is one explicit name, not a prefix
    assert unknown_metric_names('flashmm_prediction_accuracy{horizon="100ms"}') == set()
    assert unknown_metric_names("flashmm_prediction_latency_seconds") == {
        "flashmm_prediction_latency_seconds"
    }


# ------------------------------------------------------------------------------ provisioning


def test_datasource_provisioning() -> None:
    with DATASOURCES.open(encoding="utf-8") as f:
        config = yaml.safe_load(f)
    assert config["apiVersion"] == 1
    sources = config["datasources"]
    prometheus = [s for s in sources if s["type"] == "prometheus"]
    assert prometheus, "no Prometheus datasource"
    assert sum(bool(s.get("isDefault")) for s in sources) == 1
    assert all(s["url"].startswith(("http://", "https://")) for s in prometheus)


def test_dashboard_provisioning_points_at_dashboards_dir() -> None:
    text = DASHBOARD_PROVIDERS.read_text(encoding="utf-8")
    config = yaml.safe_load(text)
    assert config["apiVersion"] == 1
    providers = config["providers"]
    assert len(providers) == 1
    provider = providers[0]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == DASHBOARDS_MOUNT
    # the file documents which repository directory is mounted there
    assert f"deploy/grafana/dashboards at {DASHBOARDS_MOUNT}" in text
    assert DASHBOARDS_DIR.is_dir() and DASHBOARD_FILES
