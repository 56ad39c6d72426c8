"""Every environment variable the deployed code reads is documented in docs/configuration.md
and set in the manifests (Kubernetes or compose; a secretKeyRef counts), except the few below."""

from __future__ import annotations

import ast
import re
from typing import Any

import yaml

from flashmm.config.reference import env_names, rows
from tests.deploy.conftest import REPO

PACKAGES = ("flashmm", "hotpath", "workflows", "activities", "workers", "api", "cli")
_NAME = re.compile(r"^FLASHMM_[A-Z0-9_]*[A-Z0-9]$")

# read by the code, deliberately absent from the manifests
NOT_DEPLOYED = {
    "FLASHMM_RUN_DIR": "local data directory of `flashmm services` (development and tests)",
    "FLASHMM_DEV_PG_PORT": "port of the local PostgreSQL of `flashmm services`",
    "FLASHMM_DEV_REDIS_PORT": "port of the local Redis of `flashmm services`",
    "FLASHMM_DEV_VM_PORT": "port of the local VictoriaMetrics of `flashmm services`",
    "USER": "default --actor of the operator commands, run by a person, not a pod",
    "FLASHMM_API_PASSWORD": "password input of `flashmm api-user`, run by an operator",
    "FLASHMM_API_ADMIN_PASSWORD": "admin password of `flashmm demo` (a generated one otherwise)",
    "FLASHMM_PROFILE": "where client commands find the running demo (`flashmm demo`)",
    "FLASHMM_CODEC_SERVER_TOKEN": "the codec server binds 127.0.0.1 only, so it runs on an "
    "operator's machine next to their Temporal UI session, not in the cluster",
}


def _env_reads(tree: ast.AST) -> set[str]:
    """Literal names in os.environ[...], os.environ.get(...), os.getenv(...), and every
    FLASHMM_* string constant (defaults of *_env settings and from_env(env=...))."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if _NAME.match(node.value):
                found.add(node.value)
        elif isinstance(node, ast.Call) and node.args:
            f = ast.unparse(node.func)
            arg = node.args[0]
            if f in ("os.environ.get", "os.getenv", "environ.get", "getenv") and isinstance(
                arg, ast.Constant
            ):
                found.add(str(arg.value))
        elif (
            isinstance(node, ast.Subscript)
            and ast.unparse(node.value) == "os.environ"
            and isinstance(node.slice, ast.Constant)
        ):
            found.add(str(node.slice.value))
    return found


def code_env_vars() -> set[str]:
    names: set[str] = set()
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            names |= _env_reads(ast.parse(path.read_text(), str(path)))
    return names


def _manifest_env(rendered: dict[str, list[dict[str, Any]]]) -> set[str]:
    names: set[str] = set()
    for docs in rendered.values():
        for d in docs:
            if d["kind"] not in ("Deployment", "StatefulSet"):
                continue
            for c in d["spec"]["template"]["spec"]["containers"]:
                names |= {e["name"] for e in c.get("env", [])}
    return names


def _compose_env(compose: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for svc in compose["services"].values():
        env = svc.get("environment", {})
        names |= set(env) if isinstance(env, dict) else {e.split("=")[0] for e in env}
    return names


def test_scanner_finds_the_known_reads() -> None:
    found = code_env_vars()
    assert {"FLASHMM_CONFIG", "FLASHMM_CODEC_KEYS", "FLASHMM_KEYSTORE_SECRET"} <= found
    assert {"FLASHMM_CONTROL_TOKEN", "FLASHMM_SEI_MNEMONIC", "FLASHMM_INFLUX_TOKEN"} <= found


def test_every_variable_is_documented() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text()
    missing = sorted(n for n in code_env_vars() | env_names() if f"`{n}`" not in doc)
    assert not missing, f"not in docs/configuration.md (regenerate it): {missing}"


def test_every_variable_the_code_reads_is_deployed(
    rendered: dict[str, list[dict[str, Any]]], compose: dict[str, Any]
) -> None:
    settings_env = {r["env"] for r in rows()}  # come from the config file or env, both fine
    direct = code_env_vars() - settings_env
    k8s, dc = _manifest_env(rendered), _compose_env(compose)
    missing = sorted(n for n in direct if n not in NOT_DEPLOYED and n not in (k8s | dc))
    assert not missing, f"read by the code but set by no manifest: {missing}"
    # secrets must reach Kubernetes, not only compose
    secrets = {n for n in direct if re.search(r"TOKEN|SECRET|KEYS|MNEMONIC", n)}
    absent_k8s = sorted(n for n in secrets - set(NOT_DEPLOYED) if n not in k8s)
    assert not absent_k8s, f"secrets missing from the Kubernetes manifests: {absent_k8s}"


def test_allow_list_is_current() -> None:
    assert set(NOT_DEPLOYED) <= code_env_vars() | {"USER"}, "drop stale entries"


def test_compose_settings_variables_exist() -> None:
    settings_env = {r["env"] for r in rows()} | env_names()
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    unknown = sorted(
        n for n in _compose_env(compose) if n.startswith("FLASHMM_") and n not in settings_env
    )
    assert not unknown, f"compose sets variables FlashMM does not read: {unknown}"
