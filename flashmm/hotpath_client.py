"""Client of a hot path's local control API (``hotpath/control.py``): one command, with an
id that makes a repeat apply once, authenticated with the control token."""

from __future__ import annotations

from typing import Any

import aiohttp


async def send_command(
    url: str,
    token: str,
    command_id: str,
    command: str,
    args: dict[str, Any],
    timeout: aiohttp.ClientTimeout,
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, the JSON answer). Connection errors and timeouts are raised."""
    body = {"command_id": command_id, "command": command, "args": args}
    async with (
        aiohttp.ClientSession(timeout=timeout) as s,
        s.post(f"{url}/v1/commands", json=body, headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        data: dict[str, Any] = await r.json(content_type=None)
        return r.status, data
