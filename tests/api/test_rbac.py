"""Every role against every endpoint: allowed ones get past authorisation, the others get a
403 (and a 401 without credentials). The table is the policy the issue sets; a route the
table does not know fails the test, so no endpoint escapes it."""

from __future__ import annotations

from typing import Any

from api.auth.roles import Role
from tests.api.conftest import ROLES, Harness

V, T, OP, A = Role.VIEWER, Role.TRADER, Role.OPERATOR, Role.ADMIN
EVERYONE = {V, T, OP, A}
TRADERS = {T, OP, A}
OPERATORS = {OP, A}
ADMINS = {A}
REASON = {"reason": "test"}

# (method, path template, concrete path, body, roles allowed)
TABLE: list[tuple[str, str, str, dict[str, Any] | None, set[Role]]] = [
    ("GET", "/v1/auth/me", "/v1/auth/me", None, EVERYONE),
    ("GET", "/v1/markets", "/v1/markets", None, EVERYONE),
    ("GET", "/v1/markets/{market}", "/v1/markets/SEI-USDC", None, EVERYONE),
    ("GET", "/v1/positions", "/v1/positions", None, EVERYONE),
    ("GET", "/v1/orders", "/v1/orders", None, EVERYONE),
    ("GET", "/v1/fills", "/v1/fills", None, EVERYONE),
    ("GET", "/v1/pnl", "/v1/pnl", None, EVERYONE),
    ("GET", "/v1/risk", "/v1/risk", None, EVERYONE),
    ("GET", "/v1/models", "/v1/models", None, EVERYONE),
    ("GET", "/v1/runbooks", "/v1/runbooks", None, EVERYONE),
    ("GET", "/v1/workflows", "/v1/workflows", None, EVERYONE),
    ("GET", "/v1/workflows/{workflow_id}", "/v1/workflows/api-x", None, EVERYONE),
    ("POST", "/v1/markets/{market}/start", "/v1/markets/SEI-USDC/start", REASON, TRADERS),
    ("POST", "/v1/markets/{market}/stop", "/v1/markets/SEI-USDC/stop", REASON, TRADERS),
    ("POST", "/v1/markets/{market}/halt", "/v1/markets/SEI-USDC/halt", REASON, TRADERS),
    ("POST", "/v1/markets/{market}/resume", "/v1/markets/SEI-USDC/resume", REASON, TRADERS),
    (
        "PUT",
        "/v1/markets/{market}/params",
        "/v1/markets/SEI-USDC/params",
        {"quoting": {"gamma": 0.2}},
        TRADERS,
    ),
    (
        "POST",
        "/v1/emergency-stop",
        "/v1/emergency-stop",
        {"markets": ["SEI-USDC"], "reason": "rbac"},
        TRADERS,
    ),
    (
        "POST",
        "/v1/markets/{market}/model/rollback",
        "/v1/markets/SEI-USDC/model/rollback",
        REASON,
        OPERATORS,
    ),
    ("POST", "/v1/models/deploy", "/v1/models/deploy", {"market": "SEI-USDC"}, OPERATORS),
    ("GET", "/v1/keys", "/v1/keys", None, OPERATORS),
    ("POST", "/v1/keys/rotate", "/v1/keys/rotate", {"market": "SEI-USDC"}, OPERATORS),
    ("GET", "/v1/backups", "/v1/backups", None, OPERATORS),
    ("POST", "/v1/backups", "/v1/backups", {}, OPERATORS),
    (
        "POST",
        "/v1/backups/{backup_id}/restore",
        "/v1/backups/b1/restore",
        {"expected_checksum": "0" * 64, "confirm": True},
        ADMINS,
    ),
    (
        "POST",
        "/v1/runbooks",
        "/v1/runbooks",
        {"runbook": "reconcile", "market": "SEI-USDC"},
        OPERATORS,
    ),
    (
        "POST",
        "/v1/runbooks/{workflow_id}/approve",
        "/v1/runbooks/api-runbook-x/approve",
        {"step": "cancel"},
        OPERATORS,
    ),
    (
        "POST",
        "/v1/runbooks/{workflow_id}/abort",
        "/v1/runbooks/api-runbook-x/abort",
        {"step": "cancel"},
        OPERATORS,
    ),
    ("GET", "/v1/audit", "/v1/audit", None, OPERATORS),
    ("GET", "/v1/users", "/v1/users", None, ADMINS),
    (
        "POST",
        "/v1/users",
        "/v1/users",
        {"username": "new-user", "password": "long enough password", "role": "viewer"},
        ADMINS,
    ),
    ("DELETE", "/v1/users/{username}", "/v1/users/nobody", None, ADMINS),
    ("GET", "/v1/api-keys", "/v1/api-keys", None, ADMINS),
    ("POST", "/v1/api-keys", "/v1/api-keys", {"name": "k", "role": "viewer"}, ADMINS),
    ("DELETE", "/v1/api-keys/{key_id}", "/v1/api-keys/0000000000000000", None, ADMINS),
]
PUBLIC = {"/health", "/ready", "/metrics", "/openapi.json", "/v1/auth/login",
          "/v1/auth/refresh", "/v1/auth/logout"}  # fmt: skip


def test_the_table_covers_every_route(jwt_env: None) -> None:
    from api.app import create_app
    from flashmm.config import Settings

    paths = create_app(Settings()).openapi()["paths"]
    routes = {(m.upper(), path) for path, ops in paths.items() for m in ops if path not in PUBLIC}
    assert routes == {(m, t) for m, t, *_ in TABLE}


async def test_each_role_against_each_endpoint(harness: Harness) -> None:
    """...and every mutating call of them, allowed or not, is in the audit log."""
    wrong: list[str] = []
    before = len(await harness.audit_rows())
    mutating = 0
    for method, _, path, body, allowed in TABLE:
        if method != "GET":
            mutating += 1 + len(ROLES)
        r = await harness.http.request(method, path, json=body)
        if r.status_code != 401:
            wrong.append(f"{method} {path} without credentials: {r.status_code}")
        for role in ROLES:
            r = await harness.http.request(method, path, json=body, headers=harness.auth(role))
            if role in allowed and r.status_code in (401, 403):
                wrong.append(f"{role} {method} {path}: {r.status_code} {r.text[:120]}")
            if role not in allowed and r.status_code != 403:
                wrong.append(f"{role} {method} {path}: {r.status_code}, want 403")
            if r.status_code >= 500 and r.status_code != 503:
                wrong.append(f"{role} {method} {path}: {r.status_code} {r.text[:200]}")
    assert not wrong, "\n".join(wrong)
    rows = (await harness.audit_rows())[before:]
    assert len(rows) == mutating
    assert all(" " not in r["action"] and r["outcome"] for r in rows)  # named routes
    actors = {r["actor"] for r in rows}
    assert actors == {"anonymous"} | {f"user:{role.value}" for role in ROLES}


async def test_a_role_is_named_in_the_denial(harness: Harness) -> None:
    r = await harness.http.get("/v1/audit", headers=harness.auth(Role.TRADER))
    assert r.status_code == 403
    assert r.json()["error"] == {
        "code": "forbidden",
        "message": "role trader may not audit",
        "request_id": r.headers["x-request-id"],
    }
