"""The codec endpoint for the Temporal UI: ``POST /decode`` (and ``/encode``) with the
payloads JSON the UI sends, answered with decrypted payloads — to authorised operators only
(a bearer token), with CORS limited to the configured UI origin. ``flashmm demo`` runs it
without a token, answering loopback callers only (the dev server's UI has no login)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from flashmm.temporal.codec import CodecKeyError, EncryptionCodec

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


LOOPBACK = frozenset({"127.0.0.1", "::1"})


def make_app(codec: EncryptionCodec, token: str | None, ui_origin: str) -> web.Application:
    """``token`` None: no bearer token, but only callers on this machine's loopback."""
    if token is not None and len(token) < 16:
        raise ValueError("codec server token must be at least 16 characters")

    def cors(resp: web.StreamResponse, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Origin") == ui_origin:
            resp.headers["Access-Control-Allow-Origin"] = ui_origin
            resp.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
            resp.headers["Access-Control-Allow-Headers"] = (
                "Authorization, Content-Type, X-Namespace"
            )
            resp.headers["Access-Control-Allow-Credentials"] = "true"
        return resp

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return cors(web.Response(status=200), request)
        if token is None:
            if request.remote not in LOOPBACK:
                return cors(web.json_response({"error": "loopback only"}, status=403), request)
            return cors(await handler(request), request)
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return cors(web.json_response({"error": "unauthorized"}, status=401), request)
        return cors(await handler(request), request)

    async def apply(
        request: web.Request, fn: Callable[[list[Payload]], Awaitable[list[Payload]]]
    ) -> web.Response:
        try:
            body = await request.text()
            payloads = json_format.Parse(body, Payloads())
            out = await fn(list(payloads.payloads))
        except (json_format.ParseError, ValueError) as e:
            msg = str(e) if isinstance(e, CodecKeyError) else "malformed payloads"
            return web.json_response({"error": msg}, status=400)
        return web.Response(
            text=json_format.MessageToJson(Payloads(payloads=out)), content_type="application/json"
        )

    async def decode(request: web.Request) -> web.Response:
        return await apply(request, codec.decode)

    async def encode(request: web.Request) -> web.Response:
        return await apply(request, codec.encode)

    app = web.Application(client_max_size=4 * 1024 * 1024, middlewares=[guard])
    app.add_routes(
        [
            web.post("/decode", decode),
            web.post("/encode", encode),
            web.options("/decode", decode),
            web.options("/encode", encode),
        ]
    )
    return app
