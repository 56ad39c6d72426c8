"""Cosmos REST client with an ordered list of endpoints: connection failures move on to the
next endpoint; HTTP answers (even errors) are returned to the caller."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp

log = logging.getLogger(__name__)


class RestError(Exception):
    """No endpoint answered, or an answer was not JSON."""


class RestClient:
    def __init__(self, urls: tuple[str, ...], timeout_s: float = 2.0) -> None:
        if not urls:
            raise ValueError("at least one REST endpoint is required")
        self.urls = urls
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self.preferred = 0

    async def _s(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, JSON) from the first endpoint that answers."""
        s = await self._s()
        n = len(self.urls)
        last: Exception | None = None
        attempts = [(self.preferred + k) % n for k in range(n)]
        retried = False
        while attempts:
            i = attempts.pop(0)
            try:
                async with s.request(method, self.urls[i] + path, json=body) as r:
                    data = await r.json(content_type=None)
                    self.preferred = i
                    return r.status, data
            except aiohttp.ServerDisconnectedError as e:
                # the server closed an idle keep-alive connection: one retry on a new one
                # (safe for a broadcast too: the same bytes cannot land twice)
                last = e
                if not retried:
                    retried = True
                    attempts.insert(0, i)
            except (aiohttp.ClientConnectionError, TimeoutError) as e:
                last = e
                log.warning("REST %s unreachable (%s); trying the next endpoint", self.urls[i], e)
            except (aiohttp.ContentTypeError, ValueError) as e:
                raise RestError(f"{self.urls[i]}{path}: answer is not JSON: {e}") from e
        raise RestError(f"no REST endpoint answered {path}: {last}")

    async def get(self, path: str) -> tuple[int, Any]:
        return await self.request("GET", path)

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        return await self.request("POST", path, body)
