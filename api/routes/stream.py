"""``/v1/stream``: live quotes, fills, PnL and risk events per market, from the Redis
``events:{symbol}`` streams the hot paths write.

Authenticate with an ``Authorization: Bearer`` or ``X-API-Key`` header, or (browsers cannot
set headers on a WebSocket) with a first message ``{"type": "auth", "token": "..."}``; never in
the URL, which ends up in logs. Each client has a bounded queue: a client that does not keep
up is disconnected (close code 4008), never buffered without bound."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from redis.exceptions import RedisError

from api.auth.roles import Permission, allowed
from api.auth.store import Principal
from api.context import AppContext
from api.errors import ApiError
from flashmm.inputs import InputError, parse_json, short

router = APIRouter()
SLOW = 4008
POLICY = 1008
EVENT_TYPES = frozenset({"quote", "fill", "pnl", "risk", "order"})
MAX_AUTH_MESSAGE = 8192  # characters of the first (auth) message


async def _auth(ws: WebSocket, c: AppContext) -> Principal | None:
    from api.deps import authenticate, client_address

    auth = ws.headers.get("authorization", "")
    token = auth[7:] if auth.lower().startswith("bearer ") else None
    key = ws.headers.get("x-api-key")
    await ws.accept()
    if not token and not key:
        try:
            text = await asyncio.wait_for(ws.receive_text(), c.settings.api.ws_auth_timeout_s)
            if len(text) > MAX_AUTH_MESSAGE:
                raise InputError("message", "too long")
            first = parse_json(text, "message")  # no NaN, NUL or deep nesting
        except (TimeoutError, ValueError, KeyError, WebSocketDisconnect):
            await _close(ws, POLICY, "authentication required")
            return None
        if not isinstance(first, dict) or first.get("type") != "auth":
            await _close(ws, POLICY, "authentication required")
            return None
        token = str(first.get("token", ""))
    try:
        p = await authenticate(c, token, key, client_address(ws))  # failures count
    except ApiError as e:
        await _close(ws, POLICY, e.message)
        return None
    if not allowed(p.role, Permission.READ):
        await _close(ws, POLICY, "forbidden")
        return None
    return p


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    """Close with a reason cut to what a close frame carries (123 bytes), never an echo of
    a whole client value."""
    reason = short(reason, 100).encode("utf-8")[:120].decode("utf-8", "ignore")
    with contextlib.suppress(Exception):
        await ws.close(code, reason)


@router.websocket("/v1/stream")
async def stream(ws: WebSocket) -> None:
    c: AppContext = ws.app.state.ctx
    principal = await _auth(ws, c)
    if principal is None:
        return
    try:
        wanted = ws.query_params.get("markets", "")
        symbols = [c.market(m) for m in wanted.split(",") if m] or c.markets
        types = {t for t in ws.query_params.get("types", "").split(",") if t} or set(EVENT_TYPES)
    except ApiError as e:
        await _close(ws, POLICY, e.message)
        return
    if not types <= EVENT_TYPES:
        await _close(ws, POLICY, f"unknown event types: {sorted(types - EVENT_TYPES)}")
        return
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(c.settings.api.ws_queue)
    await ws.send_json({"type": "subscribed", "markets": symbols, "types": sorted(types)})
    reader = asyncio.create_task(_read(c, symbols, types, queue))
    watcher = asyncio.create_task(_until_closed(ws))
    try:
        while True:
            get = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait(
                {get, reader, watcher}, return_when=asyncio.FIRST_COMPLETED
            )
            if get not in done:
                get.cancel()
                if reader in done and reader.exception() is None and reader.result() == "slow":
                    await _close(ws, SLOW, "slow consumer: disconnected")
                elif reader in done:
                    await _close(ws, 1011, "event source failed")
                return
            try:
                await asyncio.wait_for(ws.send_json(get.result()), c.settings.api.ws_send_timeout_s)
            except TimeoutError:
                await _close(ws, SLOW, "slow consumer: disconnected")
                return
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        reader.cancel()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader


async def _until_closed(ws: WebSocket) -> None:
    """Reads (and ignores) client messages so a close from the client is noticed."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return


async def _read(
    c: AppContext, symbols: list[str], types: set[str], queue: asyncio.Queue[dict[str, Any]]
) -> str:
    """Tail the streams from now on; "slow" when the client's queue overflows."""
    now = f"{int(time.time() * 1000)}-0"  # "$" per call would skip events between calls
    last = {f"events:{s}": now for s in symbols}
    while True:
        try:
            got: Any = await c.redis.xread(last, count=500, block=1000)  # type: ignore[arg-type]
        except (RedisError, OSError):
            await asyncio.sleep(1.0)  # Redis down: keep the client, resume when it is back
            continue
        for key, entries in got or []:
            k = key.decode()
            for eid, fields in entries:
                last[k] = eid.decode()
                kind = fields.get(b"type", b"").decode()
                if kind not in types:
                    continue
                try:
                    data = json.loads(fields.get(b"data", b"{}"))
                except ValueError:
                    data = {}
                event = {
                    "market": k.removeprefix("events:"),
                    "id": last[k],
                    "type": kind,
                    "ts": fields.get(b"ts", b"").decode(),
                    "data": data,
                }
                try:
                    queue.put_nowait(event)
                except asyncio.QueueFull:
                    return "slow"
