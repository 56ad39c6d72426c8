"""Tendermint RPC over WebSocket: JSON-RPC ``subscribe``/``unsubscribe`` with event queries,
and the event envelopes (``tendermint/event/NewBlock``, ``tendermint/event/Tx``).

Queries support ``key='value'`` conditions joined by ``AND`` (e.g.
``tm.event='Tx' AND message.sender='sei1...'``). A subscriber that cannot keep up is dropped
with an error, as Tendermint does, rather than buffered without bound.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from flashmm.localnet.chain import Block, TxResult
from flashmm.localnet.dex import Event

log = logging.getLogger(__name__)
_COND = re.compile(r"^\s*([\w.]+)\s*=\s*'([^']*)'\s*$")
MAX_FRAME = 64 * 1024
QUEUE_LIMIT = 1000


def parse_query(q: str) -> list[tuple[str, str]]:
    """``a='x' AND b='y'`` → [(a, x), (b, y)]; raises ValueError on anything else."""
    if not q or len(q) > 512:
        raise ValueError("query must be 1..512 characters")
    conds = []
    for part in re.split(r"\s+AND\s+", q.strip()):
        m = _COND.match(part)
        if not m:
            raise ValueError(f"unsupported query condition {part!r}")
        conds.append((m.group(1), m.group(2)))
    return conds


def flatten(events: list[Event], base: dict[str, list[str]]) -> dict[str, list[str]]:
    """Composite keys ``type.key`` → values, as Tendermint indexes them for queries."""
    out = {k: list(v) for k, v in base.items()}
    for e in events:
        for a in e["attributes"]:
            out.setdefault(f"{e['type']}.{a['key']}", []).append(a["value"])
    return out


def matches(conds: list[tuple[str, str]], flat: dict[str, list[str]]) -> bool:
    return all(v in flat.get(k, ()) for k, v in conds)


@dataclass(eq=False)
class Subscriber:
    ws: web.WebSocketResponse
    subs: dict[str, tuple[Any, list[tuple[str, str]]]] = field(default_factory=dict)
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    dropped: bool = False


def _iso(chain_id: str, t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def block_messages(
    chain_id: str, b: Block, wall: float
) -> list[tuple[str, dict[str, list[str]], dict[str, Any]]]:
    """(event type, flattened keys, data) for a block's NewBlock and each Tx."""
    out: list[tuple[str, dict[str, list[str]], dict[str, Any]]] = []
    nb = {
        "type": "tendermint/event/NewBlock",
        "value": {
            "block": {
                "header": {
                    "chain_id": chain_id,
                    "height": str(b.height),
                    "time": _iso(chain_id, wall),
                }
            },
            "result_begin_block": {"events": b.begin_events},
            "result_end_block": {"events": b.end_events},
        },
    }
    flat = flatten(
        b.begin_events + b.end_events, {"tm.event": ["NewBlock"], "block.height": [str(b.height)]}
    )
    out.append(("NewBlock", flat, nb))
    for r in b.txs:
        out.append(("Tx", tx_flat(r), tx_data(r)))
    return out


def tx_flat(r: TxResult) -> dict[str, list[str]]:
    return flatten(
        r.events, {"tm.event": ["Tx"], "tx.hash": [r.txhash], "tx.height": [str(r.height)]}
    )


def tx_data(r: TxResult) -> dict[str, Any]:
    return {
        "type": "tendermint/event/Tx",
        "value": {
            "TxResult": {
                "height": str(r.height),
                "index": r.index,
                "tx": base64.b64encode(r.tx_bytes).decode(),
                "result": {
                    "code": r.code,
                    "log": r.log,
                    "gas_wanted": str(r.gas_wanted),
                    "gas_used": str(r.gas_used),
                    "events": r.events,
                },
            }
        },
    }


class RpcHub:
    """All WebSocket subscribers of one localnet."""

    def __init__(self) -> None:
        self.subscribers: set[Subscriber] = set()
        self.malformed = 0

    def publish(self, messages: list[tuple[str, dict[str, list[str]], dict[str, Any]]]) -> None:
        for sub in list(self.subscribers):
            for _kind, flat, data in messages:
                for query, (rid, conds) in sub.subs.items():
                    if matches(conds, flat):
                        self._send(sub, rid, query, data, flat)

    def _send(self, sub: Subscriber, rid: Any, query: str, data: Any, flat: Any) -> None:
        msg = json.dumps(
            {"jsonrpc": "2.0", "id": rid, "result": {"query": query, "data": data, "events": flat}}
        )
        try:
            sub.queue.put_nowait(msg)
        except asyncio.QueueFull:
            sub.dropped = True
            self.subscribers.discard(sub)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME, heartbeat=5.0)
        await ws.prepare(request)
        sub = Subscriber(ws)
        self.subscribers.add(sub)
        writer = asyncio.create_task(self._writer(sub))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._request(sub, msg.data)
                elif msg.type in (WSMsgType.BINARY,):
                    self.malformed += 1
                    await ws.send_str(_error(None, -32700, "binary frames are not accepted"))
                elif msg.type == WSMsgType.ERROR:
                    self.malformed += 1
                    break
        finally:
            self.subscribers.discard(sub)
            writer.cancel()
        return ws

    async def _writer(self, sub: Subscriber) -> None:
        while True:
            msg = await sub.queue.get()
            await sub.ws.send_str(msg)
            if sub.dropped and sub.queue.empty():
                await sub.ws.send_str(
                    _error(
                        None,
                        -32000,
                        "subscription was cancelled "
                        "(reason: client is not pulling messages fast "
                        "enough)",
                    )
                )
                await sub.ws.close()
                return

    async def _request(self, sub: Subscriber, text: str) -> None:
        try:
            req = json.loads(text)
            if not isinstance(req, dict):
                raise ValueError("request must be an object")
        except ValueError:
            self.malformed += 1
            await sub.ws.send_str(_error(None, -32700, "parse error"))
            return
        rid = req.get("id")
        method = req.get("method")
        params = req.get("params") or {}
        if method not in ("subscribe", "unsubscribe", "unsubscribe_all"):
            await sub.ws.send_str(_error(rid, -32601, f"method not found: {method!r}"))
            return
        if method == "unsubscribe_all":
            sub.subs.clear()
        else:
            q = params.get("query") if isinstance(params, dict) else None
            try:
                conds = parse_query(q if isinstance(q, str) else "")
            except ValueError as e:
                self.malformed += 1
                await sub.ws.send_str(_error(rid, -32602, f"invalid query: {e}"))
                return
            if method == "subscribe":
                sub.subs[q] = (rid, conds)  # type: ignore[index]
            else:
                sub.subs.pop(q, None)  # type: ignore[arg-type]
        await sub.ws.send_str(json.dumps({"jsonrpc": "2.0", "id": rid, "result": {}}))


def _error(rid: Any, code: int, message: str) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}})
