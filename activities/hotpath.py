"""Talking to a hot path's local control API (runs on the market's host queue)."""

from __future__ import annotations

import os
from typing import Any

import aiohttp
from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.types import HotpathCommand


class HotpathActivities:
    """``endpoints`` maps a market to its control API base URL on this host."""

    def __init__(
        self,
        endpoints: dict[str, str],
        token_env: str = "FLASHMM_CONTROL_TOKEN",
        timeout_s: float = 10.0,
    ) -> None:
        self.endpoints = endpoints
        self.token_env = token_env
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    def _auth(self) -> dict[str, str]:
        token = os.environ.get(self.token_env, "")
        if not token:
            raise ApplicationError(
                f"{self.token_env} is not set on this worker",
                type="Misconfigured",
                non_retryable=True,
            )
        return {"Authorization": f"Bearer {token}"}

    def _url(self, market: str) -> str:
        url = self.endpoints.get(market)
        if url is None:
            raise ApplicationError(
                f"no hot path for {market} on this host", type="UnknownMarket", non_retryable=True
            )
        return url

    @activity.defn(name="hotpath_command")
    async def command(self, cmd: HotpathCommand) -> dict[str, Any]:
        """Apply a command once (the command id makes retries safe); answers the state."""
        body = {"command_id": cmd.command_id, "command": cmd.command, "args": cmd.args}
        async with (
            aiohttp.ClientSession(timeout=self.timeout) as s,
            s.post(f"{self._url(cmd.market)}/v1/commands", json=body, headers=self._auth()) as r,
        ):
            data: dict[str, Any] = await r.json(content_type=None)
            if r.status == 409:  # refused in this state: retrying cannot help
                raise ApplicationError(
                    data.get("error", "refused"), type="CommandRefused", non_retryable=True
                )
            if r.status != 200:
                raise ApplicationError(f"hot path answered {r.status}: {data.get('error')}")
            return data

    @activity.defn(name="hotpath_status")
    async def status(self, market: str) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession(timeout=self.timeout) as s,
            s.get(f"{self._url(market)}/v1/status", headers=self._auth()) as r,
        ):
            if r.status != 200:
                raise ApplicationError(f"hot path status answered {r.status}")
            data: dict[str, Any] = await r.json()
            return data
