"""Talking to a hot path's local control API (runs on the market's host queue)."""

from __future__ import annotations

import os
from typing import Any

import aiohttp
from temporalio import activity
from temporalio.exceptions import ApplicationError

from flashmm import tracing
from flashmm.hotpath_client import send_command
from workflows.types import HotpathCommand

# status → error type; each is final (the same command again gets the same answer)
_REFUSALS = {
    400: "BadCommand",  # malformed, or text/numbers outside the input policy
    401: "Misconfigured",  # the worker's control token is not the hot path's
    409: "CommandRefused",  # not in this state, or parameters outside their bounds
    422: "IdempotencyConflict",  # the id was used for another command or other arguments
}


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
        return {"Authorization": f"Bearer {self._token()}"}

    def _token(self) -> str:
        token = os.environ.get(self.token_env, "")
        if not token:
            raise ApplicationError(
                f"{self.token_env} is not set on this worker",
                type="Misconfigured",
                non_retryable=True,
            )
        return token

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
        status, data = await send_command(
            self._url(cmd.market),
            self._token(),
            cmd.command_id,
            cmd.command,
            cmd.args,
            self.timeout,
        )
        refused = _REFUSALS.get(status)
        if refused is not None:  # the hot path said no: retrying the same command cannot help
            raise ApplicationError(
                str(data.get("error", "refused"))[:500], type=refused, non_retryable=True
            )
        if status != 200:
            raise ApplicationError(f"hot path answered {status}: {data.get('error')}")
        return data

    @activity.defn(name="hotpath_status")
    async def status(self, market: str) -> dict[str, Any]:
        headers = self._auth()
        tracing.inject(headers)  # the read joins the stop's trace, like the commands
        async with (
            aiohttp.ClientSession(timeout=self.timeout) as s,
            s.get(f"{self._url(market)}/v1/status", headers=headers) as r,
        ):
            if r.status != 200:
                raise ApplicationError(f"hot path status answered {r.status}")
            data: dict[str, Any] = await r.json()
            return data
