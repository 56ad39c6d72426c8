"""The WebSocket stream over a real uvicorn server: authentication (header or first
message, refused otherwise), per-market and per-type filtering of the Redis event streams,
and a slow client disconnected instead of buffered without bound."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from api.auth.roles import Role
from tests.api.conftest import Harness, make_harness, settings_for


@pytest_asyncio.fixture
async def served(
    jwt_env: None, pg_dsn: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Harness, str]]:
    s = settings_for(pg_dsn, redis_url, tmp_path, api={"ws_queue": 8, "ws_send_timeout_s": 0.5})
    h = await make_harness(s)
    server = uvicorn.Server(
        uvicorn.Config(h.app, host="127.0.0.1", port=0, log_level="warning", ws="websockets-sansio")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield h, f"ws://127.0.0.1:{port}/v1/stream"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        await h.http.aclose()
        await h.ctx.close()


async def _events(redis_url: str, market: str, n: int, kind: str = "fill", size: int = 10) -> None:
    r = aioredis.from_url(redis_url)
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        pipe.xadd(
            f"events:{market}",
            {"type": kind, "ts": "1.0", "data": json.dumps({"i": i, "pad": "x" * size})},
        )
    await pipe.execute()
    await r.aclose()


async def _closed_with(ws: ClientConnection) -> int | None:
    with contextlib.suppress(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    return ws.close_code


async def test_unauthenticated_clients_are_refused(served: tuple[Harness, str]) -> None:
    _, url = served
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "hello"}))
        assert await _closed_with(ws) == 1008
    async with connect(url, additional_headers={"Authorization": "Bearer nope"}) as ws:
        assert await _closed_with(ws) == 1008
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "auth", "token": "fmm_0000000000000000_" + "a" * 43}))
        assert await _closed_with(ws) == 1008


async def test_events_arrive_filtered_by_market_and_type(
    served: tuple[Harness, str], redis_url: str
) -> None:
    h, url = served
    headers = {"Authorization": f"Bearer {h.tokens[Role.VIEWER]}"}
    async with connect(url + "?markets=SEI-USDC&types=fill,risk", additional_headers=headers) as ws:
        hello = json.loads(await ws.recv())
        assert hello == {"type": "subscribed", "markets": ["SEI/USDC"], "types": ["fill", "risk"]}
        await _events(redis_url, "ATOM/USDC", 2)  # another market
        await _events(redis_url, "SEI/USDC", 2, kind="quote")  # another type
        await _events(redis_url, "SEI/USDC", 3)
        got = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(3)]
        assert [(e["market"], e["type"], e["data"]["i"]) for e in got] == [
            ("SEI/USDC", "fill", 0),
            ("SEI/USDC", "fill", 1),
            ("SEI/USDC", "fill", 2),
        ]
        with pytest.raises(TimeoutError):  # and nothing else
            await asyncio.wait_for(ws.recv(), 0.5)


async def test_first_message_auth_for_browsers(served: tuple[Harness, str], redis_url: str) -> None:
    h, url = served
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "auth", "token": h.tokens[Role.TRADER]}))
        assert json.loads(await ws.recv())["type"] == "subscribed"
        await _events(redis_url, "ATOM/USDC", 1, kind="pnl")
        e = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert (e["market"], e["type"]) == ("ATOM/USDC", "pnl")


async def test_unknown_market_or_type_is_refused(served: tuple[Harness, str]) -> None:
    h, url = served
    headers = {"Authorization": f"Bearer {h.tokens[Role.VIEWER]}"}
    async with connect(url + "?markets=NOPE-USDC", additional_headers=headers) as ws:
        assert await _closed_with(ws) == 1008
    async with connect(url + "?types=secrets", additional_headers=headers) as ws:
        assert await _closed_with(ws) == 1008


async def test_a_slow_client_is_dropped_not_buffered(
    served: tuple[Harness, str], redis_url: str
) -> None:
    h, url = served
    headers = {"Authorization": f"Bearer {h.tokens[Role.VIEWER]}"}
    # a client that stops reading: tiny receive buffers so the server's sends back up
    async with connect(url, additional_headers=headers, max_queue=1, max_size=None) as ws:
        assert json.loads(await ws.recv())["type"] == "subscribed"
        ws.transport.pause_reading()  # type: ignore[attr-defined]
        for _ in range(20):
            await _events(redis_url, "SEI/USDC", 200, size=20_000)
        await asyncio.sleep(3.0)
        ws.transport.resume_reading()  # type: ignore[attr-defined]
        received = 0
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 5)
                received += 1
        assert ws.close_code == 4008
        assert received < 4000  # it was cut off, not sent everything
    # and a healthy client still works afterwards
    async with connect(url, additional_headers=headers) as ws2:
        assert json.loads(await ws2.recv())["type"] == "subscribed"
