"""Market-data WebSocket client: ordered endpoints with failover, exponential backoff with
jitter, a circuit breaker per endpoint, heartbeats and staleness detection.

It speaks Tendermint JSON-RPC: after connecting it subscribes to each query and hands every
event's ``result`` to ``on_event``. Anything malformed is counted, logged with a reason and
dropped; it never ends the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FeedConfig:
    endpoints: tuple[str, ...]
    queries: tuple[str, ...]
    connect_timeout_s: float = 1.0
    heartbeat_s: float = 1.0  # WebSocket ping interval
    stale_after_s: float = 1.5  # no event for this long: reconnect (counts as a failure)
    backoff_initial_s: float = 0.05
    backoff_max_s: float = 5.0
    jitter: float = 0.25  # ± fraction of each backoff
    breaker_failures: int = 3  # consecutive failures that open an endpoint's breaker
    breaker_cooldown_s: float = 10.0
    max_frame_bytes: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise ValueError("feed.endpoints must list at least one WebSocket URL")
        for url in self.endpoints:
            if not url.startswith(("ws://", "wss://")):
                raise ValueError(f"feed endpoint must be ws:// or wss://, got {url!r}")


class CircuitBreaker:
    """Closed → open after N consecutive failures → half-open after a cooldown."""

    __slots__ = ("cooldown_s", "failures", "limit", "open_until")

    def __init__(self, limit: int, cooldown_s: float) -> None:
        self.limit = limit
        self.cooldown_s = cooldown_s
        self.failures = 0
        self.open_until = 0.0

    def allow(self, now: float) -> bool:
        return now >= self.open_until

    def success(self) -> None:
        self.failures = 0
        self.open_until = 0.0

    def failure(self, now: float) -> None:
        self.failures += 1
        if self.failures >= self.limit:
            self.open_until = now + self.cooldown_s


class FeedClient:
    """Keeps one subscription alive across endpoints; call ``run()`` in a task."""

    def __init__(
        self,
        cfg: FeedConfig,
        on_event: Callable[[dict[str, Any]], None],
        rng: random.Random | None = None,
    ) -> None:
        self.cfg = cfg
        self.on_event = on_event
        self.breakers = [
            CircuitBreaker(cfg.breaker_failures, cfg.breaker_cooldown_s) for _ in cfg.endpoints
        ]
        self._rng = rng or random.Random()
        self.connected = asyncio.Event()
        self.endpoint: str | None = None
        self.last_event = 0.0
        self.frame_ns = 0  # arrival time of the frame being handled (monotonic ns)
        self.connects = 0
        self.failovers = 0
        self.malformed = 0
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    def _pick(self, start: int) -> int | None:
        now = time.monotonic()
        n = len(self.cfg.endpoints)
        for k in range(n):
            i = (start + k) % n
            if self.breakers[i].allow(now):
                return i
        return None

    async def fail_over(self) -> None:
        """Operator-forced failover: count a failure on the current endpoint (so the next
        healthy one is preferred for a cooldown) and drop the connection."""
        if self.endpoint in self.cfg.endpoints:
            b = self.breakers[self.cfg.endpoints.index(self.endpoint)]
            b.failures = b.limit - 1
            b.failure(time.monotonic())
        ws = self._ws
        if ws is not None:
            await ws.close()

    def backoff(self, attempt: int) -> float:
        base = min(self.cfg.backoff_max_s, self.cfg.backoff_initial_s * 2 ** min(attempt, 32))
        return float(max(0.0, base * (1 + self.cfg.jitter * (2 * self._rng.random() - 1))))

    async def run(self) -> None:
        attempt = 0
        async with aiohttp.ClientSession() as session:
            while True:
                i = self._pick(0)  # always prefer the first healthy endpoint in order
                if i is None:
                    # every breaker is open: probe the one that re-opens first, at the
                    # backoff pace, rather than stay dark for a whole cooldown
                    await asyncio.sleep(self.backoff(attempt))
                    attempt += 1
                    i = min(range(len(self.breakers)), key=lambda k: self.breakers[k].open_until)
                url = self.cfg.endpoints[i]
                if self.endpoint is not None and url != self.endpoint:
                    self.failovers += 1
                ok = await self._session(session, url)
                if ok:
                    self.breakers[i].success()
                    attempt = 0
                else:
                    self.breakers[i].failure(time.monotonic())
                    nxt = self._pick(i + 1)
                    if nxt is None or nxt == i:
                        await asyncio.sleep(self.backoff(attempt))
                        attempt += 1

    async def _session(self, session: aiohttp.ClientSession, url: str) -> bool:
        """One connection; returns True if it ended cleanly after delivering events."""
        cfg = self.cfg
        delivered = False
        try:
            ws = await session.ws_connect(
                url,
                heartbeat=cfg.heartbeat_s,
                max_msg_size=cfg.max_frame_bytes,
                timeout=aiohttp.ClientWSTimeout(ws_close=cfg.connect_timeout_s),
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            log.warning("feed %s: connect failed: %s", url, e)
            return False
        self.endpoint = url
        self.connects += 1
        self._ws = ws
        try:
            for n, q in enumerate(cfg.queries, start=1):
                await ws.send_json(
                    {"jsonrpc": "2.0", "method": "subscribe", "id": n, "params": {"query": q}}
                )
            self.last_event = time.monotonic()
            self.connected.set()
            while True:
                try:
                    msg = await ws.receive(timeout=cfg.stale_after_s)
                except TimeoutError:
                    log.warning("feed %s: stale (no event for %.1fs)", url, cfg.stale_after_s)
                    return False
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self.frame_ns = time.monotonic_ns()
                    if self._handle(msg.data):
                        delivered = True
                        self.last_event = time.monotonic()
                elif msg.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSING,
                    aiohttp.WSMsgType.CLOSED,
                ):
                    log.warning("feed %s: closed by server", url)
                    return delivered
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    self.malformed += 1
                    log.warning("feed %s: protocol error: %s", url, ws.exception())
                    return False
                else:
                    self.malformed += 1
                    log.warning("feed %s: unexpected frame type %s", url, msg.type)
        except (aiohttp.ClientError, OSError) as e:
            log.warning("feed %s: connection lost: %s", url, e)
            return False
        finally:
            self.connected.clear()
            with contextlib.suppress(Exception):
                await ws.close()

    def _handle(self, text: str) -> bool:
        """Parse one frame; True if it carried an event."""
        try:
            msg = json.loads(text)
        except ValueError:
            self.malformed += 1
            log.warning("feed: dropped frame that is not JSON (%d bytes)", len(text))
            return False
        if not isinstance(msg, dict):
            self.malformed += 1
            log.warning("feed: dropped frame that is not a JSON object")
            return False
        if "error" in msg:
            log.warning("feed: server error %s", msg["error"])
            return False
        result = msg.get("result")
        if not isinstance(result, dict):
            self.malformed += 1
            log.warning("feed: dropped frame without a result object")
            return False
        if not result:  # subscription acknowledgement
            return False
        if not isinstance(result.get("data"), dict):
            self.malformed += 1
            log.warning("feed: dropped event without data")
            return False
        try:
            self.on_event(result)
        except (ValueError, KeyError, TypeError, ArithmeticError) as e:
            self.malformed += 1
            log.warning("feed: dropped malformed event: %s", e)
            return False
        return True
