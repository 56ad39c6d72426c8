"""Kubernetes manifests: the renderer matches kubectl, every overlay validates against the
Kubernetes schemas, and the invariants the trading system depends on hold."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import OVERLAYS, kubectl, render, tool

Docs = list[dict[str, Any]]


def _key(d: dict[str, Any]) -> tuple[str, str, str]:
    return d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]


def _pods(docs: Docs) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(d, d["spec"]["template"]["spec"]) for d in docs if d["kind"] in render.WORKLOADS]


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_renderer_matches_kubectl(overlay: Any) -> None:
    exe = kubectl()
    if exe is None:
        pytest.skip("kubectl is not installed: the renderer is compared where it is")
    out = subprocess.run(
        [exe, "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(overlay)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    theirs = {_key(d): d for d in yaml.safe_load_all(out) if d}
    ours = {_key(d): d for d in render.render(overlay)}
    assert sorted(ours) == sorted(theirs)
    for k in ours:
        assert ours[k] == theirs[k], k


def test_every_overlay_validates_strictly(rendered: dict[str, Docs], tmp_path: Any) -> None:
    exe = tool("kubernetes-validate")
    files = []
    for name, docs in rendered.items():
        f = tmp_path / f"{name}.yaml"
        f.write_text(yaml.safe_dump_all(docs))
        files.append(str(f))
    res = subprocess.run([exe, "--strict", "--quiet", *files], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]


def test_overlays_exist(rendered: dict[str, Docs]) -> None:
    assert {"dev", "prod"} <= set(rendered)


def test_renderer_refuses_unknown_fields(tmp_path: Any) -> None:
    (tmp_path / "kustomization.yaml").write_text("replicas: [{name: x, count: 2}]\n")
    with pytest.raises(render.RenderError, match="unsupported"):
        render.render(tmp_path)


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_one_hotpath_per_market_replicas_1_recreate(
    rendered: dict[str, Docs], overlay: str
) -> None:
    hot = [d for d in rendered[overlay] if d["metadata"]["name"].startswith("flashmm-hotpath-")]
    deployments = [d for d in hot if d["kind"] == "Deployment"]
    markets = set()
    for d in deployments:
        assert d["spec"]["replicas"] == 1
        assert d["spec"]["strategy"] == {"type": "Recreate"}
        names = [c["name"] for c in d["spec"]["template"]["spec"]["containers"]]
        assert "hotpath" in names and "host-worker" in names  # the per-host worker sidecar
        for c in d["spec"]["template"]["spec"]["containers"]:
            env = {e["name"]: e for e in c.get("env", [])}
            if "FLASHMM_MARKET" in env:
                markets.add(env["FLASHMM_MARKET"]["value"])
        signer = next(
            e
            for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
            if e["name"] == "FLASHMM_SEI_MNEMONIC"
        )
        assert signer["valueFrom"]["secretKeyRef"]["name"].endswith(
            d["metadata"]["name"].removeprefix("flashmm-hotpath")
        ), "each market signs with its own key"
    assert markets == {"SEI/USDC", "ATOM/USDC"}
    # the selectors differ, so no Deployment adopts another market's pod
    selectors = [tuple(sorted(d["spec"]["selector"]["matchLabels"].items())) for d in deployments]
    assert len(set(selectors)) == len(selectors)


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_control_port_reachable_only_from_the_sidecar(
    rendered: dict[str, Docs], overlay: str
) -> None:
    docs = rendered[overlay]
    config = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "flashmm-config"
    )
    port = yaml.safe_load(config["data"]["config.yaml"])["hotpath"]["control_port"]
    assert any(
        d["kind"] == "NetworkPolicy"
        and d["spec"]["podSelector"] == {}
        and set(d["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and "ingress" not in d["spec"]
        for d in docs
    ), "a default-deny policy"
    hot_pols = [
        d
        for d in docs
        if d["kind"] == "NetworkPolicy"
        and d["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
        == "flashmm-hotpath"
    ]
    assert len(hot_pols) == 2  # one per market
    for pol in docs:
        if pol["kind"] != "NetworkPolicy":
            continue
        for rule in pol["spec"].get("ingress", []):
            ports = [p["port"] for p in rule.get("ports", [])]
            assert ports, f"{pol['metadata']['name']}: an ingress rule without ports"
            assert port not in ports, f"{pol['metadata']['name']} admits the control port"
    for _, pod in _pods(docs):
        for c in pod["containers"]:
            assert all(p["containerPort"] != port for p in c.get("ports", []))


_SECRETISH = re.compile(r"(PASSWORD|SECRET|TOKEN|MNEMONIC|KEYS?$|DSN|REDIS_URL)")


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_no_literal_secrets(rendered: dict[str, Docs], overlay: str) -> None:
    docs = rendered[overlay]
    assert not [d for d in docs if d["kind"] == "Secret"], "Secrets are made outside the manifests"
    for d, pod in _pods(docs):
        for c in pod["containers"]:
            for e in c.get("env", []):
                name = e["name"]
                if _SECRETISH.search(name) and not name.endswith("_ENV"):
                    assert "value" not in e, f"{d['metadata']['name']}/{c['name']}: {name} literal"
                    assert "secretKeyRef" in e["valueFrom"], name


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_container_hardened_with_resources_and_probes(
    rendered: dict[str, Docs], overlay: str
) -> None:
    for d, pod in _pods(rendered[overlay]):
        where = d["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        for c in pod["containers"]:
            here = f"{where}/{c['name']}"
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["allowPrivilegeEscalation"] is False, here
            assert sc["readOnlyRootFilesystem"] is True, here
            assert sc["capabilities"]["drop"] == ["ALL"], here
            res = c["resources"]
            assert {"cpu", "memory"} <= set(res["requests"]) and {"memory"} <= set(res["limits"]), (
                here
            )
            if d["kind"] != "Job":  # runs to completion, bounded by activeDeadlineSeconds
                assert "livenessProbe" in c and "readinessProbe" in c, here
            else:
                assert d["spec"]["activeDeadlineSeconds"] <= 900, here


def test_hotpath_guaranteed_qos_and_real_probes(rendered: dict[str, Docs]) -> None:
    for d, pod in _pods(rendered["prod"]):
        if not d["metadata"]["name"].startswith("flashmm-hotpath-"):
            continue
        for c in pod["containers"]:
            assert c["resources"]["requests"] == c["resources"]["limits"], c["name"]
        hp = pod["containers"][0]
        assert "/v1/status" in " ".join(hp["readinessProbe"]["exec"]["command"])
        assert "/healthz" in " ".join(hp["livenessProbe"]["exec"]["command"])  # last cycle age
    api = next(
        d
        for d in rendered["prod"]
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "flashmm-api"
    )
    c = api["spec"]["template"]["spec"]["containers"][0]
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_hpa_pdb_and_scrape_annotations(rendered: dict[str, Docs], overlay: str) -> None:
    docs = rendered[overlay]
    hpas = {
        d["spec"]["scaleTargetRef"]["name"] for d in docs if d["kind"] == "HorizontalPodAutoscaler"
    }
    assert {"flashmm-api", "flashmm-worker-control"} <= hpas
    assert not any(n.startswith("flashmm-hotpath") for n in hpas)
    pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    for d, _ in _pods(docs):
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert (
            any(
                all(labels.get(k) == v for k, v in p["spec"]["selector"]["matchLabels"].items())
                for p in pdbs
            )
            or d["kind"] == "Job"
            or d["metadata"]["name"]
            in (
                "alertmanager",
                "grafana",
                "flashmm-localnet",
            )
        ), d["metadata"]["name"]
        if labels.get("flashmm.io/job") in (
            "flashmm-api",
            "flashmm-hotpath",
            "flashmm-localnet",
            "flashmm-worker",
        ):
            ann = d["spec"]["template"]["metadata"]["annotations"]
            assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"]


def test_monitoring_uses_the_project_rules_and_dashboards(rendered: dict[str, Docs]) -> None:
    from tests.deploy.conftest import REPO

    cms = {
        d["metadata"]["name"].rsplit("-", 1)[0]: d
        for d in rendered["prod"]
        if d["kind"] == "ConfigMap"
    }
    alerts = (REPO / "deploy" / "prometheus" / "alerts.yml").read_text()
    assert cms["prometheus-config"]["data"]["alerts.yml"] == alerts
    for f in (REPO / "deploy" / "grafana" / "dashboards").glob("*.json"):
        assert cms["grafana-dashboards"]["data"][f.name] == f.read_text()


def test_prod_exports_traces_to_a_collector_the_egress_policy_admits(
    rendered: dict[str, Docs],
) -> None:
    docs = rendered["prod"]
    config = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "flashmm-config"
    )
    endpoint = yaml.safe_load(config["data"]["config.yaml"])["telemetry"]["otlp_endpoint"]
    m = re.fullmatch(r"http://[\w.-]+\.(?P<ns>[\w-]+)\.svc\.cluster\.local:(?P<port>\d+)", endpoint)
    assert m, endpoint
    admitted = [
        rule
        for d in docs
        if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "flashmm-egress"
        for rule in d["spec"]["egress"]
        if {"port": int(m["port"]), "protocol": "TCP"} in rule.get("ports", [])
        and any(
            t.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
            == m["ns"]
            for t in rule.get("to", [])
        )
    ]
    assert admitted, f"no egress rule admits {endpoint}"
