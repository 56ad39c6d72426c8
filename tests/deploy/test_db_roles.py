"""The database roles in the deployments: migrations run once, as the administrator, in their
own step (compose service, Kubernetes Job); every service connects as the application role
and never sees the administrator's DSN."""

from __future__ import annotations

from typing import Any

import pytest

ADMIN = "FLASHMM_STORES__POSTGRES_MIGRATE_DSN"
APP_DSN = "FLASHMM_STORES__POSTGRES_DSN"


def test_compose_services_connect_as_the_app_role(compose: dict[str, Any]) -> None:
    svcs = compose["services"]
    migrate = svcs["migrate"]
    assert migrate["command"] == ["db", "migrate"]
    assert migrate["environment"][ADMIN].startswith("postgresql://flashmm:")
    assert "FLASHMM_PG_APP_PASSWORD" in migrate["environment"]
    flashmm = [n for n, s in svcs.items() if APP_DSN in (s.get("environment") or {})]
    assert {"api", "worker-control", "worker-host", "hotpath-sei-usdc"} <= set(flashmm)
    for name in flashmm:
        env = svcs[name]["environment"]
        assert env[APP_DSN].startswith("postgresql://flashmm_app:${PG_APP_PASSWORD"), name
        assert name == "migrate" or ADMIN not in env, name
    for name in ("api", "worker-control", "hotpath-sei-usdc", "hotpath-atom-usdc"):
        cond = svcs[name]["depends_on"]["migrate"]["condition"]
        assert cond == "service_completed_successfully", name


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_only_the_migrate_job_holds_the_admin_dsn(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    jobs = [d for d in rendered[overlay] if d["kind"] == "Job"]
    assert "flashmm-migrate" in [j["metadata"]["name"] for j in jobs]
    seen = set()
    for d in rendered[overlay]:
        if d["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        for c in d["spec"]["template"]["spec"]["containers"]:
            env = {e["name"]: e for e in c.get("env", [])}
            if ADMIN in env:
                seen.add(d["metadata"]["name"])
                ref = env[ADMIN]["valueFrom"]["secretKeyRef"]
                assert (ref["name"], ref["key"]) == ("flashmm-db-admin", "migrate-dsn")
                assert c["args"] == ["db", "migrate"]
            if APP_DSN in env:
                ref = env[APP_DSN]["valueFrom"]["secretKeyRef"]
                assert (ref["name"], ref["key"]) == ("flashmm-stores", "postgres-dsn")
    assert seen == {"flashmm-migrate"}
    job = jobs[0]
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "flashmm-migrate"
    assert job["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
