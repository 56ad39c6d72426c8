"""Prometheus alert rules, scrape config and Alertmanager routing under deploy/.

The promtool checks need Debian's ``prometheus`` package (``/usr/bin/promtool``) and are
skipped only when it is missing. The helpers that build the set of metric names the code
exports and extract metric names from PromQL are shared with ``test_dashboards.py``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from flashmm import telemetry
from flashmm.temporal.sdk_metrics import SDK_SAMPLE_NAMES
from hotpath.metrics import EXPORTED, HotPathCollector

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS_TEST = PROMETHEUS_DIR / "tests" / "alerts_test.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"

PROMTOOL = shutil.which("promtool")
requires_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (Debian package 'prometheus'); PromQL is not validated",
)

# Metrics defined by the ML issue: the model's directional accuracy per market and horizon
# (100ms, 200ms, 500ms), a 0..1 gauge. Rules and dashboards already use it; the code does not
# export it yet. Delete the entry once the ML code exports it (through hotpath.metrics.EXPORTED
# or flashmm.telemetry) -- any other name the code does not export stays an error.
ML_ISSUE_METRICS: dict[str, str] = {
    "flashmm_prediction_accuracy": "gauge",
}

# Series Prometheus itself writes for every scrape target.
PROMETHEUS_SERIES: dict[str, str] = {"up": "gauge"}

# Sample names each metric type is exposed under (prometheus_client, text format).
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    # a name in EXPORTED that the collector did not describe: accept any sample suffix
    "unknown": ("", "_total", "_created", "_bucket", "_sum", "_count"),
}


def exported_metric_types() -> dict[str, str]:
    """Metric family name -> type for everything the code exports, plus the ML-issue metrics."""
    types: dict[str, str] = {}
    # an empty collector still yields every family it exports, with its type
    for family in HotPathCollector(lambda: ()).collect():
        types[family.name] = family.type
    for name in EXPORTED:
        types.setdefault(name, "unknown")
    for value in vars(telemetry).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                types[family.name] = family.type
    types.update(ML_ISSUE_METRICS)
    types.update(PROMETHEUS_SERIES)
    return types


def allowed_series_names() -> frozenset[str]:
    """Every sample name PromQL may select: family names with their type's suffixes, and the
    Temporal SDK's own metrics as its exporter names them (flashmm.temporal.sdk_metrics)."""
    return SDK_SAMPLE_NAMES | frozenset(
        name + suffix
        for name, kind in exported_metric_types().items()
        for suffix in _SUFFIXES.get(kind, _SUFFIXES["unknown"])
    )


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_NAME_MATCHER = re.compile(r'__name__\s*=\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"')
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
# Grafana's label_values(metric, label) / label_values(label) variable queries
_LABEL_VALUES_2 = re.compile(r"\blabel_values\s*\(([^(),]*),\s*[a-zA-Z_]\w*\s*\)")
_LABEL_VALUES_1 = re.compile(r"\blabel_values\s*\(\s*[a-zA-Z_]\w*\s*\)")
_IDENT = re.compile(r"(?<![\w.:$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")
_KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "bool",
        "and",
        "or",
        "unless",
        "atan2",
        "inf",
        "nan",
    }
)


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL (or Grafana variable) query selects.

    Ignores functions and aggregations (identifiers followed by ``(``), keywords, label names
    and values (inside ``{...}``, grouping clauses and strings), ranges and durations, and
    Grafana ``$variables``.
    """
    names = set(_NAME_MATCHER.findall(expr))
    text = re.sub(r"#[^\n]*", " ", expr)
    text = _STRING.sub('""', text)
    text = re.sub(r"\{[^{}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\[\]]*\]", " ", text)  # ranges, subqueries, [[var]]
    text = _VARIABLE.sub(" ", text)
    text = _LABEL_VALUES_2.sub(r"(\1)", text)
    text = _LABEL_VALUES_1.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    for match in _IDENT.finditer(text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names


def unknown_metric_names(expr: str) -> set[str]:
    """Names in ``expr`` that neither the code nor the ML issue exports."""
    return promql_metric_names(expr) - allowed_series_names()


def _load(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def _rules() -> list[dict[str, Any]]:
    return [rule for group in _load(ALERTS)["groups"] for rule in group["rules"]]


def _alert_rules() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def _promtool(*args: str) -> None:
    assert PROMTOOL is not None
    proc = subprocess.run(
        [PROMTOOL, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"promtool {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}"


# ------------------------------------------------------------------------------ promtool


@requires_promtool
def test_promtool_check_rules() -> None:
    _promtool("check", "rules", str(ALERTS))


@requires_promtool
def test_promtool_check_config() -> None:
    # rule_files in prometheus.yml are relative to the config file: promtool resolves them
    # against its directory, whatever the working directory is
    _promtool("check", "config", str(PROMETHEUS_CONFIG))


@requires_promtool
def test_promtool_rule_unit_tests() -> None:
    _promtool("test", "rules", str(ALERTS_TEST))


# ------------------------------------------------------------------------------ rules


def test_alert_names_are_unique_and_expected() -> None:
    names = [rule["alert"] for rule in _alert_rules()]
    assert len(names) == len(set(names))
    required = {
        "HotPathLatencyHigh",
        "PredictionAccuracyLow",
        "PositionUtilisationHigh",
        "ProcessDown",
        "MarketDataStale",
        "HotPathHalted",
        "DbWriterBacklog",
        "StoreDown",
        "ErrorsBurst",
    }
    assert required <= set(names), required - set(names)


@pytest.mark.parametrize("rule", _alert_rules(), ids=lambda r: r["alert"])
def test_rule_has_severity_and_annotations(rule: dict[str, Any]) -> None:
    assert rule.get("labels", {}).get("severity") in {"critical", "warning", "info"}
    annotations = rule.get("annotations", {})
    for key in ("summary", "description", "runbook_url"):
        assert str(annotations.get(key, "")).strip(), f"{rule['alert']}: no {key}"
    assert annotations["runbook_url"] == f"docs/runbook.md#{rule['alert'].lower()}"
    # per-market alerts say which market in both texts
    if "market" in _alert_label_sets().get(rule["alert"], set()):
        assert "$labels.market" in annotations["summary"]
        assert "$labels.market" in annotations["description"]


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: r.get("alert") or r.get("record"))
def test_rule_expressions_use_exported_metrics(rule: dict[str, Any]) -> None:
    names = promql_metric_names(rule["expr"])
    assert names, f"no metric found in {rule['expr']!r}"
    assert not unknown_metric_names(rule["expr"]), rule["expr"]


def _alert_tests() -> Iterator[dict[str, Any]]:
    for case in _load(ALERTS_TEST)["tests"]:
        yield from case.get("alert_rule_test", [])


def _alert_label_sets() -> dict[str, set[str]]:
    """Alert name -> the labels its firing unit-test cases expect."""
    labels: dict[str, set[str]] = {}
    for test in _alert_tests():
        for alert in test.get("exp_alerts") or []:
            labels.setdefault(test["alertname"], set()).update(alert.get("exp_labels", {}))
    return labels


def test_every_alert_has_firing_and_quiet_unit_tests() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in _alert_tests():
        exp = test.get("exp_alerts") or []
        (firing if exp else quiet).add(test["alertname"])
        for alert in exp:
            # labels and annotations are checked exactly, not left to promtool's defaults
            assert alert.get("exp_labels"), test
            assert set(alert.get("exp_annotations", {})) >= {
                "summary",
                "description",
                "runbook_url",
            }, test
    names = {rule["alert"] for rule in _alert_rules()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested staying quiet"
    assert (firing | quiet) <= names, "unit tests for alerts that do not exist"


# ------------------------------------------------------------------------------ extractor


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("up == 0", {"up"}),
        ('up{job=~"flashmm-.*"} == 0', {"up"}),
        (
            "histogram_quantile(0.95, sum by (market, le) "
            '(rate(flashmm_hotpath_stage_latency_seconds_bucket{stage="cycle"}[5m]))) > 3e-4',
            {"flashmm_hotpath_stage_latency_seconds_bucket"},
        ),
        (
            'sum(rate(a_total{market=~"$market"}[$__rate_interval])) by (market)'
            " / on (market) group_left(side) b_count offset 1h30m",
            {"a_total", "b_count"},
        ),
        ("max_over_time(foo[5m:30s]) > bool 1 and bar unless baz", {"foo", "bar", "baz"}),
        ('{__name__="flashmm_fill_rate", market="x"} > Inf', {"flashmm_fill_rate"}),
        ("label_values(flashmm_position_lots, market)", {"flashmm_position_lots"}),
        ('label_values(flashmm_position_lots{job="x"}, market)', {"flashmm_position_lots"}),
        ("label_values(market)", set()),
        ("vector(1) * ${scale} + scalar(time())", set()),
    ],
)
def test_promql_metric_names(expr: str, expected: set[str]) -> None:
    assert promql_metric_names(expr) == expected


def test_unknown_metric_names_are_flagged() -> None:
    assert unknown_metric_names("flashmm_orders_placed_total + flashmm_pnl_total_usdc") == set()
    assert unknown_metric_names("rate(flashmm_errors_total[1m])") == set()
    assert unknown_metric_names("flashmm_prediction_accuracy < 0.55") == set()  # ML issue
    assert unknown_metric_names("flashmm_no_such_metric > 1") == {"flashmm_no_such_metric"}
    # suffixes follow the metric type: a gauge has no buckets, a counter is read as _total
    assert unknown_metric_names("flashmm_pnl_total_usdc_bucket") == {
        "flashmm_pnl_total_usdc_bucket"
    }
    assert unknown_metric_names("flashmm_orders_placed") == {"flashmm_orders_placed"}


# ------------------------------------------------------------------------------ alertmanager

_MATCHER = re.compile(r'^\s*([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"?((?:[^"\\]|\\.)*?)"?\s*$')


def _matches(matchers: list[str], labels: dict[str, str]) -> bool:
    for text in matchers:
        m = _MATCHER.match(text)
        assert m, f"unparsable matcher {text!r}"
        name, op, value = m.groups()
        have = labels.get(name, "")
        if op == "=":
            ok = have == value
        elif op == "!=":
            ok = have != value
        elif op == "=~":
            ok = re.fullmatch(value, have) is not None
        else:
            ok = re.fullmatch(value, have) is None
        if not ok:
            return False
    return True


def _route(labels: dict[str, str]) -> list[dict[str, Any]]:
    """Alertmanager's routing: the matching leaf routes, children inheriting their parent."""

    config = _load(ALERTMANAGER_CONFIG)

    def descend(raw: dict[str, Any], inherited: dict[str, Any]) -> list[dict[str, Any]]:
        eff = {**inherited, **{k: v for k, v in raw.items() if k not in ("routes", "continue")}}
        out: list[dict[str, Any]] = []
        for child in raw.get("routes", []):
            if _matches(child.get("matchers", []), labels):
                out += descend(child, eff)
                if not child.get("continue", False):
                    break
        return out or [eff]

    return descend(config["route"], {})


def _receivers() -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in _load(ALERTMANAGER_CONFIG)["receivers"]}


def _integrations(receiver: str) -> set[str]:
    return {key for key, value in _receivers()[receiver].items() if key != "name" and value}


@pytest.mark.parametrize(
    ("severity", "integrations", "repeat"),
    [
        ("critical", {"slack_configs", "email_configs", "webhook_configs"}, "30m"),
        ("warning", {"slack_configs", "webhook_configs"}, None),
        ("info", {"webhook_configs"}, None),
    ],
)
def test_alertmanager_routes_by_severity(
    severity: str, integrations: set[str], repeat: str | None
) -> None:
    routes = _route({"alertname": "X", "severity": severity, "market": "SEI-USDC"})
    assert len(routes) == 1
    assert _integrations(routes[0]["receiver"]) == integrations
    if repeat:
        assert routes[0]["repeat_interval"] == repeat


def test_every_rule_severity_is_routed_explicitly() -> None:
    config = _load(ALERTMANAGER_CONFIG)
    routed = {
        m.group(3)
        for child in config["route"]["routes"]
        for text in child.get("matchers", [])
        if (m := _MATCHER.match(text)) and m.group(1) == "severity" and m.group(2) == "="
    }
    used = {rule["labels"]["severity"] for rule in _alert_rules()}
    assert used <= routed


def test_alertmanager_receivers_and_secrets() -> None:
    config = _load(ALERTMANAGER_CONFIG)
    receivers = _receivers()

    def referenced(route: dict[str, Any]) -> Iterator[str]:
        if "receiver" in route:
            yield route["receiver"]
        for child in route.get("routes", []):
            yield from referenced(child)

    assert set(referenced(config["route"])) <= set(receivers)
    # secrets come from files, never inline
    glob = config.get("global", {})
    assert "slack_api_url" not in glob and glob.get("slack_api_url_file")
    assert "smtp_auth_password" not in glob
    for receiver in receivers.values():
        for slack in receiver.get("slack_configs", []):
            assert "api_url" not in slack
        for email in receiver.get("email_configs", []):
            assert "auth_password" not in email and email.get("auth_password_file")
        for hook in receiver.get("webhook_configs", []):
            assert "url" not in hook and hook.get("url_file")
    text = ALERTMANAGER_CONFIG.read_text(encoding="utf-8")
    assert "hooks.slack.com" not in text
    amtool = shutil.which("amtool")
    if amtool:  # Debian's prometheus-alertmanager; otherwise the structure checks above stand
        proc = subprocess.run(
            [amtool, "check-config", str(ALERTMANAGER_CONFIG)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


def _alertname(matchers: list[str]) -> str:
    for text in matchers:
        m = _MATCHER.match(text)
        if m and m.group(1) == "alertname" and m.group(2) == "=":
            return m.group(3)
    raise AssertionError(f"no alertname= matcher in {matchers}")


def test_alertmanager_inhibit_rules() -> None:
    rules = _load(ALERTMANAGER_CONFIG)["inhibit_rules"]
    by_pair = {
        (_alertname(r["source_matchers"]), _alertname(r["target_matchers"])): r for r in rules
    }
    halted = by_pair[("HotPathHalted", "PositionUtilisationHigh")]
    assert halted["equal"] == ["market"]
    down = by_pair[("ProcessDown", "MarketDataStale")]
    # the hot path or the venue being down explains stale data; a down worker does not
    for job, inhibits in (
        ("flashmm-hotpath", True),
        ("flashmm-localnet", True),
        ("flashmm-worker", False),
    ):
        alert = {"alertname": "ProcessDown", "job": job, "severity": "critical"}
        assert _matches(down["source_matchers"], alert) is inhibits

    alert_names = {rule["alert"] for rule in _alert_rules()}
    labels = _alert_label_sets()
    for source, target in by_pair:
        assert {source, target} <= alert_names
        # labels compared by `equal` must exist on both alerts, or the rule never applies
        equal = set(by_pair[(source, target)].get("equal", []))
        assert equal <= labels[source] and equal <= labels[target], (source, target)
