"""The Dockerfile and the compose file: the facts production depends on."""

from __future__ import annotations

import re
from typing import Any

from tests.deploy.conftest import REPO

DOCKERFILE = (REPO / "deploy" / "docker" / "Dockerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_base_images_pinned_and_multi_stage() -> None:
    froms = [rest for word, rest in _instructions() if word == "FROM"]
    assert len(froms) >= 2, "multi-stage"
    for f in froms:
        image = f.split()[0]
        assert "@sha256:" in image or re.search(r":\d+\.\d+\.\d+[\w.-]*$", image), image


def test_runs_as_non_root_with_a_health_check() -> None:
    ins = _instructions()
    users = [rest for word, rest in ins if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(word == "HEALTHCHECK" for word, _ in ins)
    assert any(word == "ENTRYPOINT" and "tini" in rest for word, rest in ins)


def test_cpu_torch() -> None:
    assert "--index-url https://download.pytorch.org/whl/cpu torch==2.13.0" in DOCKERFILE


def test_dockerignore_keeps_secrets_and_state_out() -> None:
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert ignore[0] == "**" or "**" in ignore, "deny by default"
    assert not any(line.startswith("!.run") or line.startswith("!deploy/.env") for line in ignore)


def test_compose_platform(compose: dict[str, Any]) -> None:
    svcs = compose["services"]
    for need in (
        "hotpath-sei-usdc",
        "worker-control",
        "worker-host",
        "api",
        "temporal",
        "temporal-ui",
        "postgres",
        "redis",
        "influxdb",
        "prometheus",
        "grafana",
        "localnet",
    ):
        assert need in svcs, need
    assert svcs["influxdb"]["image"].startswith("influxdb:2.7")
    assert svcs["temporal"]["environment"]["DB"] == "postgres12"
    for name, svc in svcs.items():
        if name not in ("trading", "migrate", "temporal-setup", "temporal-ui"):
            assert "healthcheck" in svc, f"{name} has no health check"
    mounts = " ".join(svcs["prometheus"]["volumes"])
    assert "./prometheus/alerts.yml" in mounts
    gmounts = " ".join(svcs["grafana"]["volumes"])
    assert "./grafana/provisioning" in gmounts and "./grafana/dashboards" in gmounts
    for name, svc in svcs.items():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|TOKEN|KEYS|MNEMONIC|AUTH", key):
                assert str(value).startswith("${"), f"{name}: {key} is a literal"
