"""The control-API client keeps connections alive for the emergency stop and survives a hot
path that restarted in between (its kept-alive connection is gone)."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web

from flashmm.hotpath_client import send_command


async def _server(port: int, seen: list[dict[str, Any]]) -> web.AppRunner:
    async def command(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.json_response({"applied": True, "peer": request.transport is not None})

    app = web.Application()
    app.add_routes([web.post("/v1/commands", command)])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def test_a_restarted_hot_path_is_reached_on_a_new_connection(
    unused_tcp_port: int,
) -> None:
    seen: list[dict[str, Any]] = []
    timeout = aiohttp.ClientTimeout(total=5)
    url = f"http://127.0.0.1:{unused_tcp_port}"
    async with aiohttp.ClientSession() as session:
        first = await _server(unused_tcp_port, seen)
        status, _ = await send_command(url, "t", "a", "halt", {}, timeout, session)
        assert status == 200
        await first.cleanup()  # the hot path restarts: the pooled connection dies
        second = await _server(unused_tcp_port, seen)
        try:
            status, body = await send_command(url, "t", "b", "halt", {}, timeout, session)
        finally:
            await second.cleanup()
    assert status == 200 and body["applied"]
    assert [s["command_id"] for s in seen] == ["a", "b"]


async def test_a_connection_dropped_under_the_request_is_retried_once_on_a_new_one() -> None:
    """The peer closes a kept-alive connection just as the next command goes out on it (a
    restart racing the stop): the command is sent again on a fresh connection."""
    import asyncio
    import json

    answered: list[str] = []
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        mine = connections
        served = 0
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(ln.split(b":")[1])
                for ln in head.split(b"\r\n")
                if ln.lower().startswith(b"content-length")
            )
            body = json.loads(await reader.readexactly(length))
            if mine == 1 and served == 1:  # the second request on the first connection
                writer.close()
                return
            served += 1
            answered.append(body["command_id"])
            out = json.dumps({"applied": True}).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(out)}\r\nConnection: keep-alive\r\n\r\n".encode()
                + out
            )
            await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    timeout = aiohttp.ClientTimeout(total=5)
    try:
        async with aiohttp.ClientSession() as session:
            assert (await send_command(url, "t", "a", "halt", {}, timeout, session))[0] == 200
            status, body = await send_command(url, "t", "b", "halt", {}, timeout, session)
    finally:
        server.close()
    assert status == 200 and body == {"applied": True}
    assert answered == ["a", "b"] and connections == 2
