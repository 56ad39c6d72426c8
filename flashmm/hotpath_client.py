"""Client of a hot path's local control API (``hotpath/control.py``): one command, with an
id that makes a repeat apply once, authenticated with the control token. While tracing is
on, the caller's span travels along as a W3C ``traceparent`` header (``flashmm.tracing``)."""

from __future__ import annotations

from typing import Any

import aiohttp

from flashmm import tracing


async def send_command(
    url: str,
    token: str,
    command_id: str,
    command: str,
    args: dict[str, Any],
    timeout: aiohttp.ClientTimeout,
    session: aiohttp.ClientSession | None = None,
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, the JSON answer). Connection errors and timeouts are raised.

    With ``session`` the call reuses its kept-alive connection (the emergency stop's halt
    then costs no TCP handshake); a connection the hot path has closed since (a restart) is
    retried once on a new one — safe, because the id binds the command to its arguments."""
    body = {"command_id": command_id, "command": command, "args": args}
    headers = {"Authorization": f"Bearer {token}"}
    tracing.inject(headers)  # nothing while tracing is off
    if session is None:
        async with aiohttp.ClientSession(timeout=timeout) as s:
            return await _post(s, url, body, headers, timeout)
    try:
        return await _post(session, url, body, headers, timeout)
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
        return await _post(session, url, body, headers, timeout)


async def _post(
    s: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    timeout: aiohttp.ClientTimeout,
) -> tuple[int, dict[str, Any]]:
    async with s.post(f"{url}/v1/commands", json=body, headers=headers, timeout=timeout) as r:
        data: dict[str, Any] = await r.json(content_type=None)
        return r.status, data
