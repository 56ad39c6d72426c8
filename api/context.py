"""What the routes share: the stores, the Temporal client, identities, limits and audit.

PostgreSQL is required (identities and audit live there); Redis, Temporal and the hot paths
are reached when needed and may be down: the routes that need them say so, the others and
the emergency stop keep working."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as aioredis
from temporalio.client import Client
from temporalio.service import RPCError

from api.audit import AuditSink
from api.auth.store import IdentityStore
from api.auth.tokens import TokenIssuer
from api.errors import ApiError
from api.ratelimit import RateLimiter
from flashmm import tracing
from flashmm.config import Settings
from flashmm.temporal.client import data_converter


@dataclass
class AppContext:
    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    identities: IdentityStore
    issuer: TokenIssuer
    limiter: RateLimiter
    audit: AuditSink
    control_token: str = ""
    hotpaths: dict[str, str] = field(default_factory=dict)
    _temporal: Client | None = None
    _hotpath_http: aiohttp.ClientSession | None = None
    _temporal_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    async def create(cls, settings: Settings) -> AppContext:
        api = settings.api
        pool = await asyncpg.create_pool(
            settings.stores.postgres_dsn, min_size=1, max_size=10, command_timeout=5
        )
        r = aioredis.from_url(
            settings.stores.redis_url, socket_timeout=2.0, socket_connect_timeout=1.0
        )
        return cls(
            settings=settings,
            pool=pool,
            redis=r,
            identities=IdentityStore(pool, api.auth_cache_s),
            issuer=TokenIssuer(
                api.jwt_secret(),
                api.jwt_issuer,
                api.access_ttl_s,
                api.refresh_ttl_s,
                api.jwt_previous_secret(),
            ),
            limiter=RateLimiter(dict(api.rate_limits)),
            audit=AuditSink(pool, Path(api.spool_dir) / "audit.jsonl"),
            control_token=os.environ.get(settings.hotpath.control_token_env, ""),
            hotpaths=dict(settings.control.hotpaths),
        )

    def hotpath_http(self) -> aiohttp.ClientSession:
        """One HTTP session for the hot paths' control APIs: kept-alive connections, so an
        emergency stop's halt does not wait for a TCP handshake."""
        if self._hotpath_http is None or self._hotpath_http.closed:
            self._hotpath_http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit_per_host=8, keepalive_timeout=60)
            )
        return self._hotpath_http

    async def close(self) -> None:
        if self._hotpath_http is not None:
            await self._hotpath_http.close()
        self._temporal = None  # the client has no close; its connection goes with it
        with contextlib.suppress(Exception):
            await self.redis.aclose()
        await self.pool.close()

    @property
    def markets(self) -> list[str]:
        return [m.symbol for m in self.settings.markets]

    def market(self, name: str) -> str:
        """A market from its URL form (``SEI-USDC``) or its symbol."""
        symbol = name.replace("-", "/").upper()
        if symbol not in self.markets:
            raise ApiError(404, f"unknown market {name!r}")
        return symbol

    async def temporal(self) -> Client:
        """The Temporal client; 503 when the server cannot be reached in time."""
        async with self._temporal_lock:
            if self._temporal is None:
                c = self.settings.control
                try:
                    self._temporal = await asyncio.wait_for(
                        Client.connect(
                            c.temporal_address,
                            namespace=c.namespace,
                            data_converter=data_converter(),
                            interceptors=tracing.temporal_interceptors(),
                        ),
                        self.settings.api.temporal_timeout_s,
                    )
                except (TimeoutError, RuntimeError, OSError) as e:
                    raise ApiError(503, f"Temporal is unreachable: {type(e).__name__}") from None
            return self._temporal

    async def temporal_call(self, coro: Any) -> Any:
        """Run one Temporal call with the API's timeout; 503 when it cannot be done."""
        try:
            return await asyncio.wait_for(coro, self.settings.api.temporal_timeout_s)
        except TimeoutError:
            self._temporal = None
            raise ApiError(503, "Temporal did not answer in time") from None
        except RPCError as e:
            if "unavailable" in str(e.status).lower():
                self._temporal = None
                raise ApiError(503, "Temporal is unreachable") from None
            raise
