"""Bad input is refused, never a 500, never poison (issue 12). Every input fuzzing ever
found to break the API is kept here as an explicit regression example: NUL in every kind of
parameter, dates that overflow, ``before_id=2**63``, 20,000-level nested JSON, NaN, 1e309,
lone surrogates and 400-digit integers in bodies. Each gets the standard error shape, its
audit entry is stored, and nothing else is lost: a trader's next entry lands after it, in
order, on an intact chain."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from api.auth.roles import Role
from flashmm.stores.pg import audit
from tests.api.conftest import Harness, closed_port


def cursor(ts: str, key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([ts, key]).encode()).decode().rstrip("=")


def refused(r: httpx.Response, loc: list[str] | None = None, status: int = 422) -> dict[str, Any]:
    """The standard error shape, naming the field when ``loc`` is given."""
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) <= {"code", "message", "request_id", "fields"}
    assert err["code"] == {422: "invalid_request", 413: "payload_too_large"}.get(
        status, err["code"]
    )
    assert err["message"] and err["request_id"] == r.headers["x-request-id"]
    if loc is not None:
        assert [f["loc"] for f in err["fields"]] == [loc], err
    return dict(err)


async def audited(h: Harness, rid: str) -> dict[str, Any]:
    """The one audit entry of the request ``rid``."""
    rows = await h.ctx.pool.fetch("SELECT * FROM audit_log WHERE request_id = $1", rid)
    assert len(rows) == 1, (rid, rows)
    out = dict(rows[0])
    out["params"] = json.loads(out["params"])
    return out


async def nothing_lost(h: Harness, after_id: int) -> None:
    """A trader's normal call is written after the hostile ones, the chain is intact and
    nothing waits in the spool or was quarantined."""
    r = await h.http.post(
        "/v1/markets/SEI-USDC/halt",
        json={"reason": "after the storm"},
        headers={**h.auth(Role.TRADER), "X-Request-ID": "trader-after"},
    )
    assert r.status_code == 503  # Temporal is not running here: still on the record
    last = (await h.audit_rows())[-1]
    assert (last["actor"], last["request_id"]) == ("user:trader", "trader-after")
    assert last["id"] > after_id
    async with h.ctx.pool.acquire() as conn:
        assert (await audit.verify(conn)).ok
    stats = await h.ctx.audit.stats()
    assert (stats.depth, stats.quarantined) == (0, 0)


async def last_id(h: Harness) -> int:
    return int(await h.ctx.pool.fetchval("SELECT coalesce(max(id), 0) FROM audit_log"))


NUL_CURSOR = cursor("2026-01-01T00:00:00+00:00", "k\x00")
NUL_CASES: list[tuple[str, str, Any, Role, list[str]]] = [
    ("GET", "/v1/audit?actor=a%00b", None, Role.ADMIN, ["query", "actor"]),
    ("GET", "/v1/audit?action=%00", None, Role.ADMIN, ["query", "action"]),
    ("GET", "/v1/fills?market=SEI%00", None, Role.VIEWER, ["query", "market"]),
    ("GET", "/v1/fills?x%00=1", None, Role.VIEWER, ["query"]),
    ("GET", "/v1/fills?market=%ff", None, Role.VIEWER, ["query"]),
    ("GET", f"/v1/orders?cursor={NUL_CURSOR}", None, Role.VIEWER, ["query", "cursor"]),
    ("GET", f"/v1/workflows?cursor={NUL_CURSOR}", None, Role.VIEWER, ["query", "cursor"]),
    ("GET", "/v1/workflows/wf%00x", None, Role.VIEWER, ["path", "workflow_id"]),
    ("GET", "/v1/markets/SEI%00USDC", None, Role.VIEWER, ["path", "market"]),
    ("DELETE", "/v1/users/bob%00", None, Role.ADMIN, ["path", "username"]),
    ("DELETE", "/v1/api-keys/k%00", None, Role.ADMIN, ["path", "key_id"]),
    (
        "POST",
        "/v1/backups/b%00/restore",
        {"expected_checksum": "0" * 64, "confirm": True},
        Role.ADMIN,
        ["path", "backup_id"],
    ),
    (
        "POST",
        "/v1/runbooks/api-runbook-x%00/approve",
        {"step": "s"},
        Role.ADMIN,
        ["path", "workflow_id"],
    ),
    ("POST", "/v1/markets/SEI-USDC/halt", {"reason": "x\x00"}, Role.TRADER, ["body", "reason"]),
    (
        "POST",
        "/v1/emergency-stop",
        {"markets": ["SEI-USDC"], "reason": "stop\x00"},
        Role.TRADER,
        ["body", "reason"],
    ),
    (
        "POST",
        "/v1/users",
        {"username": "eve\x00", "password": "p" * 20, "role": "viewer"},
        Role.ADMIN,
        ["body", "username"],
    ),
    ("POST", "/v1/api-keys", {"name": "k\x00", "role": "viewer"}, Role.ADMIN, ["body", "name"]),
    ("POST", "/v1/backups", {"reason": "\x00"}, Role.OPERATOR, ["body", "reason"]),
]


async def test_nul_in_every_kind_of_parameter_is_a_422_and_on_the_record(h: Harness) -> None:
    start = await last_id(h)
    for i, (method, path, body, role, loc) in enumerate(NUL_CASES):
        rid = f"nul-{i}"
        r = await h.http.request(
            method, path, json=body, headers={**h.auth(role), "X-Request-ID": rid}
        )
        refused(r, loc)
        row = await audited(h, rid)
        assert row["actor"] == f"user:{role.value}"
        assert row["outcome"].startswith("refused: ") and "\x00" not in row["outcome"]
    assert await h.ctx.pool.fetchval("SELECT count(*) FROM pending_estops") == 0
    await nothing_lost(h, start)


async def test_dates_and_integers_that_overflow_are_a_422(h: Harness) -> None:
    cases = [
        ("/v1/fills?until=9999-12-31T23:59:59-14:00", ["query", "until"]),
        ("/v1/fills?since=0001-01-01T00:00:00%2B14:00", ["query", "since"]),
        (f"/v1/fills?cursor={cursor('9999-12-31T23:59:59-14:00', 'k')}", ["query", "cursor"]),
        (f"/v1/audit?before_id={2**63}", ["query", "before_id"]),
        (f"/v1/audit?before_id={'9' * 400}", ["query", "before_id"]),
        (f"/v1/audit?before_id={'9' * 5000}", ["query", "before_id"]),
        (f"/v1/fills?limit={'9' * 5000}", ["query", "limit"]),
    ]
    start = await last_id(h)
    for i, (path, loc) in enumerate(cases):
        rid = f"overflow-{i}"
        r = await h.http.get(path, headers={**h.auth(Role.ADMIN), "X-Request-ID": rid})
        refused(r, loc)
    ok = await h.http.get(f"/v1/audit?before_id={2**63 - 1}", headers=h.auth(Role.ADMIN))
    assert ok.status_code == 200
    await nothing_lost(h, start)


BAD_LOGINS: list[tuple[bytes, list[str]]] = [
    (b'{"username": "eve\\u0000", "password": "x"}', ["body", "username"]),
    (b'{"username": "eve", "password": "x\\u0000"}', ["body", "password"]),
    (b'{"username": "eve", "password": NaN}', ["body", "password"]),
    (b'{"username": "eve", "password": 1e309}', ["body", "password"]),
    (b'{"username": "eve\\ud800", "password": "x"}', ["body", "username"]),
    (b'{"username": "eve", "password": -Infinity}', ["body", "password"]),
    (b'{"username": "eve", "password": ' + b"7" * 400 + b"}", ["body", "password"]),
    (b'{"username": "eve", "password": "\xff"}', ["body"]),
]


async def test_poisoned_logins_are_refused_and_still_audited(h: Harness) -> None:
    start = await last_id(h)
    for i, (raw, loc) in enumerate(BAD_LOGINS):
        rid = f"login-{i}"
        r = await h.http.post(
            "/v1/auth/login",
            content=raw,
            headers={"Content-Type": "application/json", "X-Request-ID": rid},
        )
        refused(r, loc)
        row = await audited(h, rid)
        assert row["action"] == "auth.login" and row["outcome"].startswith("refused: ")
        assert "password" not in row["params"] or row["params"]["password"] == "***"
    stored = (await audited(h, "login-0"))["params"]
    assert stored["username"] == "eve\\u0000"  # escaped, not dropped
    assert (await audited(h, "login-4"))["params"]["username"] == "eve\\ud800"
    await nothing_lost(h, start)


async def test_poisoned_params_bodies_are_refused_and_still_audited(h: Harness) -> None:
    bodies: list[tuple[bytes, list[str]]] = [
        (b'{"risk": {"max_position_notional": NaN}}', ["body", "risk", "max_position_notional"]),
        (b'{"risk": {"max_position_notional": 1e309}}', ["body", "risk", "max_position_notional"]),
        (b'{"quoting": {"gamma": ' + b"1" * 400 + b"}}", ["body", "quoting", "gamma"]),
        (b'{"quoting": {"g\\udc00": 1}}', ["body", "quoting", "g\\udc00"]),
        (b'{"reason": "r", "risk": {"x": Infinity}}', ["body", "risk", "x"]),
    ]
    start = await last_id(h)
    for i, (raw, loc) in enumerate(bodies):
        rid = f"params-{i}"
        r = await h.http.put(
            "/v1/markets/SEI-USDC/params",
            content=raw,
            headers={
                **h.auth(Role.TRADER),
                "Content-Type": "application/json",
                "X-Request-ID": rid,
            },
        )
        refused(r, loc)
        row = await audited(h, rid)
        assert (row["actor"], row["action"]) == ("user:trader", "markets.set_params")
    row = await audited(h, "params-2")
    assert row["params"]["quoting"]["gamma"] == "1" * 400  # kept as text
    assert (await audited(h, "params-0"))["params"]["risk"]["max_position_notional"] == "NaN"
    await nothing_lost(h, start)


async def test_deeply_nested_json_is_refused_fast(h: Harness) -> None:
    start = await last_id(h)
    deep = b'{"risk": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    for i, (path, role) in enumerate(
        [("/v1/markets/SEI-USDC/params", Role.TRADER), ("/v1/auth/login", None)]
    ):
        rid = f"deep-{i}"
        headers = {"Content-Type": "application/json", "X-Request-ID": rid}
        if role is not None:
            headers.update(h.auth(role))
        t0 = time.perf_counter()
        r = await h.http.request("PUT" if role else "POST", path, content=deep, headers=headers)
        assert time.perf_counter() - t0 < 1.0
        refused(r, ["body"])
        row = await audited(h, rid)
        assert row["params"]["_unparsed_bytes"] == len(deep) and "nest" in row["params"]["_why"]
    await nothing_lost(h, start)


async def test_a_413_from_content_length_is_audited(h: Harness) -> None:
    limit = h.ctx.settings.api.max_body_bytes
    r = await h.http.post(
        "/v1/backups",
        content=b"x" * (limit + 1),
        headers={**h.auth(Role.OPERATOR), "X-Request-ID": "too-big"},
    )
    refused(r, status=413)
    row = await audited(h, "too-big")
    assert (row["action"], row["outcome"]) == ("backups.start", "http 413")
    assert row["params"] == {"_unread_bytes": limit + 1}


async def test_long_or_odd_ids_are_not_echoed_whole(h: Harness) -> None:
    long_id = "w" * 5000
    r = await h.http.get(f"/v1/workflows/{long_id}", headers=h.auth(Role.VIEWER))
    err = refused(r, status=404)
    assert long_id not in err["message"] and len(err["message"]) < 400
    r = await h.http.get("/health", headers={"X-Request-ID": "r" * 5000})
    assert len(r.headers["x-request-id"]) <= 64
    r = await h.http.post(
        "/v1/users",
        json={"username": "ok", "password": "p" * 20, "role": "viewer", "k" * 5000: 1},
        headers=h.auth(Role.ADMIN),
    )
    err = refused(r)
    assert all(len(part) < 100 for f in err["fields"] for part in f["loc"])


async def test_audit_rows_are_bounded_and_query_strings_redacted(h: Harness) -> None:
    junk = {f"field{i}": "v" * 100 for i in range(500)}  # ~55 kB, under the body limit
    r = await h.http.post(
        "/v1/backups?token=sekrit&note=fine",
        json={"reason": "x", **junk},
        headers={**h.auth(Role.OPERATOR), "X-Request-ID": "bounded"},
    )
    assert r.status_code == 422
    row = await audited(h, "bounded")
    text = json.dumps(row["params"])
    assert len(text) < 20_000 and row["params"]["_truncated"] is True
    assert "sekrit" not in text and "token=***" in text


@pytest.fixture
async def served(h: Harness) -> AsyncIterator[str]:
    """The same app behind a real uvicorn on loopback (keep-alive connections)."""
    port = closed_port()
    server = uvicorn.Server(
        uvicorn.Config(
            h.app,
            host="127.0.0.1",
            port=port,
            lifespan="off",
            log_level="critical",
            ws="websockets-sansio",
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_the_keep_alive_connection_survives_errors(h: Harness, served: str) -> None:
    async def boom() -> None:
        raise RuntimeError("a bug")

    h.app.add_api_route("/v1/boom", boom, methods=["GET"])
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=served, limits=limits) as client:
        ports = []
        for path, status in [
            ("/v1/audit?actor=%00", 422),
            ("/v1/fills?until=9999-12-31T23:59:59-14:00", 422),
            ("/v1/boom", 500),
            ("/v1/markets", 200),
        ]:
            r = await client.get(path, headers=h.auth(Role.ADMIN))
            assert r.status_code == status, (path, r.text)
            assert r.json() if status == 200 else refused(r, status=status)
            ports.append(r.extensions["network_stream"].get_extra_info("client_addr"))
        assert len(set(ports)) == 1, ports  # one connection all along


async def test_websocket_input_is_bounded_too(h: Harness, served: str) -> None:
    url = served.replace("http://", "ws://") + "/v1/stream"

    async def closed(ws: ClientConnection) -> tuple[int | None, str | None]:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        return ws.close_code, ws.close_reason

    async with connect(url) as ws:  # the auth message nested 20,000 deep
        await ws.send('{"type": "auth", "token": ' + "[" * 20_000 + "]" * 20_000 + "}")
        assert await closed(ws) == (1008, "authentication required")
    async with connect(url) as ws:
        await ws.send('{"type": "auth", "token": "\\u0000", "n": NaN}')
        assert await closed(ws) == (1008, "authentication required")
    headers = {"Authorization": f"Bearer {h.tokens[Role.VIEWER]}"}
    async with connect(url + "?markets=" + "X" * 5000, additional_headers=headers) as ws:
        code, reason = await closed(ws)
        assert code == 1008 and reason and "X" * 200 not in reason


@pytest.fixture
def h(harness: Harness) -> Harness:
    return harness
