"""The request pipeline around every route (plain ASGI, no per-request task):

request id → body size limit → timeout → the route → security headers, metrics, and an
audit entry for every mutating call (who, what, target, parameters, outcome, request id),
allowed or not."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response

REQUESTS = Counter(
    "flashmm_api_requests_total", "API requests by route and status", ["route", "status"]
)
LATENCY = Histogram(
    "flashmm_api_request_seconds",
    "API request latency by route",
    ["route"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
AUDIT_FAILURES = Counter(
    "flashmm_api_audit_spooled_total", "Audit entries spooled while PostgreSQL was unavailable"
)

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"geolocation=(), camera=(), microphone=()"),
]
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_RID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class _TooLarge(HTTPException):
    """Raised from the body stream; FastAPI passes HTTP exceptions through as they are."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes")


class Pipeline:
    def __init__(self, app: ASGIApp, max_body: int, timeout_s: float, audit: Any) -> None:
        self.app = app
        self.max_body = max_body
        self.timeout_s = timeout_s
        self.audit = audit  # async (actor, action, target, params, outcome, request_id)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        rid = given if _RID.match(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        method = scope["method"]
        t0 = time.perf_counter()
        status = 500
        started = False
        body = bytearray()

        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await error_response(rid, 413, f"request body over {self.max_body} bytes")(
                scope, receive, _with_headers(send, rid)
            )
            self._observe(scope, 413, t0)
            return

        async def receive_limited() -> Message:
            msg = await receive()
            if msg["type"] == "http.request":
                body.extend(msg.get("body", b""))
                if len(body) > self.max_body:
                    raise _TooLarge(self.max_body)
            return msg

        audited = False
        held: Message | None = None

        async def send_wrapped(msg: Message) -> None:
            # a mutating call is on the record before its answer leaves
            nonlocal status, started, audited, held
            if msg["type"] == "http.response.start":
                status = msg["status"]
                started = True
                msg = {**msg, "headers": [*msg.get("headers", []), *_extra(rid)]}
                if method in MUTATING:
                    held = msg
                    return
            elif held is not None and not msg.get("more_body", False):
                audited = True
                await self._audit(scope, state, bytes(body), status, rid)
                await send(held)
                held = None
            elif held is not None:
                await send(held)
                held = None
            await send(msg)

        try:
            await asyncio.wait_for(self.app(scope, receive_limited, send_wrapped), self.timeout_s)
        except _TooLarge:
            status = 413
            if not started:
                await error_response(rid, 413, f"request body over {self.max_body} bytes")(
                    scope, receive, _with_headers(send, rid)
                )
        except TimeoutError:
            status = 504
            if not started:
                await error_response(rid, 504, "the request took too long")(
                    scope, receive, _with_headers(send, rid)
                )
        finally:
            self._observe(scope, status, t0)
            if method in MUTATING and not audited:
                await self._audit(scope, state, bytes(body), status, rid)

    def _observe(self, scope: Scope, status: int, t0: float) -> None:
        route = _route(scope)
        REQUESTS.labels(route, str(status)).inc()
        LATENCY.labels(route).observe(time.perf_counter() - t0)

    async def _audit(
        self, scope: Scope, state: dict[str, Any], body: bytes, status: int, rid: str
    ) -> None:
        principal = state.get("principal")
        actor = principal.actor if principal is not None else state.get("claimed", "anonymous")
        route = scope.get("route")
        action = getattr(route, "name", None) or f"{scope['method']} {scope['path']}"
        target = "/".join(str(v) for v in (scope.get("path_params") or {}).values())
        try:
            params = json.loads(body) if body else {}
        except ValueError:
            params = {"_unparsed_bytes": len(body)}
        if not isinstance(params, dict):
            params = {"_body": params}
        query = scope.get("query_string", b"").decode("latin-1")
        if query:
            params["_query"] = query
        outcome = state.get("outcome") or ("ok" if status < 400 else f"http {status}")
        if await self.audit(actor, action, target or "-", params, outcome, rid) == "spooled":
            AUDIT_FAILURES.inc()


def _route(scope: Scope) -> str:
    route = scope.get("route")
    return str(getattr(route, "path", "unmatched"))


def _extra(rid: str) -> list[tuple[bytes, bytes]]:
    return [(b"x-request-id", rid.encode()), *SECURITY_HEADERS]


def _with_headers(send: Send, rid: str) -> Send:
    async def inner(msg: Message) -> None:
        if msg["type"] == "http.response.start":
            msg = {**msg, "headers": [*msg.get("headers", []), *_extra(rid)]}
        await send(msg)

    return inner
