"""The request pipeline around every route (plain ASGI, no per-request task):

request id → body size limit → the input policy (``flashmm.inputs``: path, query and JSON
body; a refusal is a 422 naming the field) → timeout → the route → security headers,
metrics, and an audit entry for every mutating call and every refused input (who, what,
target, parameters, outcome, request id), allowed or not. A 413 decided from
Content-Length is audited too.

An error inside a route never reaches the server as an exception once the answer has been
sent, so the keep-alive connection stays usable for the next request."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response
from flashmm import tracing
from flashmm.inputs import InputError, check_text, loads_json, parse_json, text_problem
from flashmm.redact import redact_query

log = logging.getLogger(__name__)

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
MAX_QUERY = 8192


class _TooLargeError(Exception):
    """Raised while reading the body: more bytes than the limit."""


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
        body = bytearray()
        audit_it = method in MUTATING

        declared = headers.get(b"content-length")
        if declared is not None:
            # -1: not a length, or one with more digits than any body could have
            size = int(declared) if declared.isdigit() and len(declared) <= 18 else -1
            if not 0 <= size <= self.max_body:
                if audit_it:  # on the record before the answer leaves
                    await self._audit(scope, state, body, 413, rid, size)
                await self._reply(scope, receive, send, rid, 413, self._too_large())
                self._observe(scope, 413, t0)
                return

        sent_start = False  # the response start went to the client
        completed = False  # ... and its last body part
        audited = False
        held: Message | None = None

        async def send_wrapped(msg: Message) -> None:
            # a mutating call is on the record before its answer leaves
            nonlocal status, sent_start, completed, audited, held
            if msg["type"] == "http.response.start":
                status = msg["status"]
                msg = {**msg, "headers": [*msg.get("headers", []), *_extra(rid)]}
                if audit_it:
                    held = msg
                    return
                sent_start = True
            elif held is not None:
                if not msg.get("more_body", False):
                    audited = True
                    await self._audit(scope, state, body, status, rid, None)
                await send(held)
                sent_start, held = True, None
            if msg["type"] == "http.response.body" and not msg.get("more_body", False):
                completed = True
            await send(msg)

        async def run() -> None:
            replay = await self._read_body(receive, body)
            _check_url(scope)
            if body and _json_body(headers):
                parse_json(bytes(body), "body")

            async def replayed() -> Message:
                return replay.pop(0) if replay else await receive()

            await self.app(scope, replayed, send_wrapped)

        try:
            await asyncio.wait_for(run(), self.timeout_s)
        except _TooLargeError:
            status = 413
            if not sent_start:
                await self._reply(scope, receive, send, rid, 413, self._too_large())
        except InputError as e:
            status, audited = 422, True
            state["outcome"] = f"refused: {e}"
            await self._audit(scope, state, body, status, rid, None)
            if not sent_start:
                await self._reply(scope, receive, send, rid, 422, "the request is not valid", e)
        except TimeoutError:
            status = 504
            if not sent_start:
                await self._reply(scope, receive, send, rid, 504, "the request took too long")
        except Exception:
            # answered here, not re-raised: the server would close the keep-alive connection
            log.exception("unhandled error", extra={"request_id": rid})
            if sent_start and not completed:
                raise  # half an answer went out: only closing the connection ends it
            if not sent_start:
                status = 500
                await self._reply(scope, receive, send, rid, 500, "internal error")
        finally:
            self._observe(scope, status, t0)
            if (audit_it or state.get("input_refused")) and not audited:
                await self._audit(scope, state, body, status, rid, None)

    def _too_large(self) -> str:
        return f"request body over {self.max_body} bytes"

    async def _read_body(self, receive: Receive, body: bytearray) -> list[Message]:
        """The whole body (at most ``max_body`` bytes) into ``body``; returns the messages
        to hand to the route in its place."""
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                return [{"type": "http.request", "body": bytes(body), "more_body": False}, msg]
            body.extend(msg.get("body", b""))
            if len(body) > self.max_body:
                raise _TooLargeError
            if not msg.get("more_body", False):
                return [{"type": "http.request", "body": bytes(body), "more_body": False}]

    @staticmethod
    async def _reply(
        scope: Scope,
        receive: Receive,
        send: Send,
        rid: str,
        status: int,
        message: str,
        refused: InputError | None = None,
    ) -> None:
        fields = [refused.field()] if refused is not None else None
        response = error_response(rid, status, message, fields=fields)
        await response(scope, receive, _with_headers(send, rid))

    def _observe(self, scope: Scope, status: int, t0: float) -> None:
        route = _route(scope)
        REQUESTS.labels(route, str(status)).inc()
        LATENCY.labels(route).observe(time.perf_counter() - t0)

    async def _audit(
        self,
        scope: Scope,
        state: dict[str, Any],
        body: bytearray,
        status: int,
        rid: str,
        unread: int | None,
    ) -> None:
        principal = state.get("principal")
        actor = principal.actor if principal is not None else state.get("claimed")
        actor = actor or _bearer_subject(scope)
        name, path_params = _matched(scope)
        action = name or f"{scope['method']} {scope['path']}"
        target = "/".join(str(v) for v in path_params.values())
        params = _params(bytes(body), unread)
        query = scope.get("query_string", b"").decode("latin-1")
        if query:
            params["_query"] = redact_query(query)
        outcome = state.get("outcome") or ("ok" if status < 400 else f"http {status}")
        if await self.audit(actor, action, target or "-", params, outcome, rid) == "spooled":
            AUDIT_FAILURES.inc()


def _bearer_subject(scope: Scope) -> str:
    """Who a request refused before its route ran comes from: the subject of a valid bearer
    token (checked locally: signature and expiry, no database), else "anonymous"."""
    auth = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
    issuer = getattr(getattr(getattr(scope.get("app"), "state", None), "ctx", None), "issuer", None)
    if issuer is None or not auth.lower().startswith("bearer "):
        return "anonymous"
    try:
        return f"user:{issuer.verify(auth[7:].strip(), 'access').subject}"
    except Exception:  # any invalid token: not who it claims
        return "anonymous"


def _params(body: bytes, unread: int | None) -> dict[str, Any]:
    """The body as audit parameters: what could be parsed, made storable by the sink."""
    if unread is not None:
        return {"_unread_bytes": unread}
    if not body:
        return {}
    try:
        params = loads_json(body)
    except InputError as e:
        return {"_unparsed_bytes": len(body), "_why": e.message}
    return params if isinstance(params, dict) else {"_body": params}


def _matched(scope: Scope) -> tuple[str | None, dict[str, Any]]:
    """The route's name and path parameters; looked up when the route never ran (a refusal
    before routing)."""
    route = scope.get("route")
    if route is not None:
        return getattr(route, "name", None), dict(scope.get("path_params") or {})
    router = getattr(scope.get("app"), "router", None)
    found = _find(getattr(router, "routes", []), scope.get("path", ""), scope.get("method", ""))
    return found or (None, {})


def _find(routes: Any, path: str, method: str) -> tuple[str | None, dict[str, Any]] | None:
    """Duck-typed route lookup: plain routes, and FastAPI's included routers (whose
    ``effective_candidates()`` hold the routes with their prefixes applied)."""
    for r in routes:
        kids = getattr(r, "effective_candidates", None)
        if callable(kids):
            found = _find(kids(), path, method)
            if found is not None:
                return found
            continue
        regex = getattr(r, "path_regex", None)
        methods = getattr(r, "methods", None)
        m = regex.match(path) if regex is not None else None
        if m is not None and (not methods or method in methods):
            return getattr(r, "name", None), m.groupdict()
    return None


def _check_url(scope: Scope) -> None:
    """The path and query string under the input policy (raises ``InputError``)."""
    raw = scope.get("raw_path")
    path = scope.get("path", "")
    if isinstance(raw, bytes):
        try:  # some clients put the query in raw_path
            path = unquote_to_bytes(raw.split(b"?", 1)[0]).decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("path", "must be valid UTF-8") from None
    problem = text_problem(path)
    if problem is not None:  # name the path parameter when a route has one there
        for name, value in _matched(scope)[1].items():
            if isinstance(value, str):
                check_text(value, ("path", name))
        raise InputError("path", problem)
    query = scope.get("query_string", b"")
    if len(query) > MAX_QUERY:
        raise InputError("query", f"must be at most {MAX_QUERY} bytes")
    try:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise InputError("query", "must be valid UTF-8") from None
    for k, v in pairs:
        check_text(k, "query")
        check_text(v, ("query", k))


def _json_body(headers: dict[bytes, bytes]) -> bool:
    """Whether FastAPI would read the body as JSON (no content type, or a JSON one)."""
    ctype = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    return not ctype or ctype == b"application/json" or ctype.endswith(b"+json")


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


class Tracing:
    """A server span per HTTP request, outside the pipeline (added by ``create_app`` only
    while tracing is on): continues a caller's W3C ``traceparent``, is the current span for
    the route (the Temporal client's and the hot-path halts' spans are its children) and
    records method, route, status and the request id. Never headers, query or body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        carrier = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope.get("headers") or []
            if k in (b"traceparent", b"tracestate")
        }
        status = 500

        async def send_status(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
            await send(msg)

        with tracing.tracer("flashmm.api").start_as_current_span(
            f"{method} {scope.get('path', '')}",
            context=tracing.extract(carrier),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope.get("path", "")},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                await self.app(scope, receive, send_status)
            except Exception as e:
                span.set_status(StatusCode.ERROR, type(e).__name__)
                raise
            finally:
                route = _route(scope)
                if route != "unmatched":
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                rid = scope.get("state", {}).get("request_id")
                if rid:
                    span.set_attribute("flashmm.request_id", rid)
                if status >= 500:
                    span.set_status(StatusCode.ERROR)
