"""Hot state in Redis for the API and dashboards, written in the background.

Keys (as the architecture document lays them out):
* ``orderbook:{symbol}`` hash: timestamp, sequence, bids_json, asks_json; TTL 10 s;
* ``positions:{symbol}`` hash: base_balance, quote_balance, position_usdc, last_updated;
* ``predictions:{symbol}`` list, newest first, capped at 100, TTL 300 s;
* ``risk:{symbol}`` hash: the hot path's live trading and risk state (its state and since
  when, position and limit use, daily loss, breaker), from its first cycle; TTL 15 s, so a
  gone hot path's state disappears instead of looking live (``hotpath/pnl_record.py``);
* ``events:{symbol}`` stream (XADD, approximately capped) of live quotes, fills, PnL and risk
  events for the API's WebSocket.

The hot path only calls the ``put_*`` methods, which replace a pending value or append to a
bounded queue and return at once. Redis being down means stale dashboards: the writer keeps
the newest state, drops the oldest events (counted) and reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from decimal import Decimal
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from flashmm import telemetry

log = logging.getLogger(__name__)
BOOK_TTL_S = 10
PREDICTIONS_TTL_S = 300
PREDICTIONS_CAP = 100
RISK_TTL_S = 15
STREAM_MAXLEN = 10_000


class RedisState:
    def __init__(
        self, url: str, events_limit: int = 5_000, interval_s: float = 0.1, name: str = "redis"
    ) -> None:
        self.url = url
        self.interval_s = interval_s
        self.name = name
        self._books: dict[str, dict[Any, Any]] = {}
        self._positions: dict[str, dict[Any, Any]] = {}
        self._risk: dict[str, dict[Any, Any]] = {}
        self._predictions: deque[tuple[str, dict[str, Any]]] = deque(maxlen=1_000)
        self._events: deque[tuple[str, dict[Any, Any]]] = deque(maxlen=events_limit)
        self._client: aioredis.Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.up = False
        self.writes = 0
        self.failures = 0

    # --- the hot path's side (never blocks) --------------------------------------------
    def put_book(
        self,
        symbol: str,
        seq: int,
        bids: list[tuple[int, int]],
        asks: list[tuple[int, int]],
        tick: Decimal,
        lot: Decimal,
    ) -> None:
        """Levels as (price ticks, lots); turned into decimal strings off the hot path."""
        self._books[symbol] = {
            "timestamp": time.time(),
            "sequence": seq,
            "bids": bids,
            "asks": asks,
            "tick": tick,
            "lot": lot,
        }

    def put_position(self, symbol: str, base: float, quote: float, position_usdc: float) -> None:
        self._positions[symbol] = {
            "base_balance": repr(base),
            "quote_balance": repr(quote),
            "position_usdc": repr(position_usdc),
            "last_updated": f"{time.time():.6f}",
        }

    def put_risk(self, symbol: str, fields: dict[str, str]) -> None:
        """The hot path's live risk state (every field, as text): replaces a pending one."""
        self._risk[symbol] = fields

    def put_prediction(self, symbol: str, prediction: dict[str, Any]) -> None:
        self._predictions.append((symbol, prediction))

    def put_event(self, symbol: str, kind: str, data: dict[str, Any]) -> None:
        if len(self._events) == self._events.maxlen:
            telemetry.DROPPED.labels(self.name).inc()
        self._events.append(
            (
                symbol,
                {
                    "type": kind,
                    "ts": f"{time.time():.6f}",
                    "data": json.dumps(data, separators=(",", ":")),
                },
            )
        )

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="redis-state")

    async def close(self) -> None:
        """Stop the writer (bounded), then one last flush: nothing sent twice, no hang."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            for _ in range(20):  # a cancellation can be swallowed by a client timeout
                task.cancel()
                done, _ = await asyncio.wait({task}, timeout=0.25)
                if done:
                    break
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await asyncio.wait_for(self._flush(), 1.0)
        if self._client is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._client.aclose()

    async def _run(self) -> None:
        delay = self.interval_s
        while not self._stopping:
            await asyncio.sleep(delay)
            try:
                await self._flush()
                delay = self.interval_s
                self._set_up(True)
            except (RedisError, OSError, TimeoutError) as e:
                self.failures += 1
                telemetry.ERRORS.labels(self.name, type(e).__name__).inc()
                if self.up or self.failures == 1:
                    log.warning("redis unavailable (%s); hot state is stale until it returns", e)
                self._set_up(False)
                delay = min(2.0, delay * 2)

    def _set_up(self, up: bool) -> None:
        self.up = up
        telemetry.STORE_UP.labels(self.name).set(1 if up else 0)

    async def _flush(self) -> None:
        if not (self._books or self._positions or self._risk or self._predictions or self._events):
            if self._client is None:
                self._client = aioredis.from_url(
                    self.url, socket_timeout=1.0, socket_connect_timeout=1.0
                )
            await self._client.ping()
            return
        if self._client is None:
            self._client = aioredis.from_url(
                self.url, socket_timeout=1.0, socket_connect_timeout=1.0
            )
        # take everything now: what arrives during the write waits for the next flush
        books, self._books = self._books, {}
        positions, self._positions = self._positions, {}
        risk, self._risk = self._risk, {}
        preds, self._predictions = self._predictions, deque(maxlen=self._predictions.maxlen)
        events, self._events = self._events, deque(maxlen=self._events.maxlen)
        t0 = time.perf_counter()
        try:
            pipe = self._client.pipeline(transaction=False)
            for sym, b in books.items():
                pipe.hset(f"orderbook:{sym}", mapping=_book_hash(b))
                pipe.expire(f"orderbook:{sym}", BOOK_TTL_S)
            for sym, h in positions.items():
                pipe.hset(f"positions:{sym}", mapping=h)
            for sym, h in risk.items():
                pipe.hset(f"risk:{sym}", mapping=h)
                pipe.expire(f"risk:{sym}", RISK_TTL_S)
            for sym, p in preds:
                key = f"predictions:{sym}"
                pipe.lpush(key, json.dumps(p, separators=(",", ":")))
                pipe.ltrim(key, 0, PREDICTIONS_CAP - 1)
                pipe.expire(key, PREDICTIONS_TTL_S)
            for sym, e in events:
                pipe.xadd(f"events:{sym}", e, maxlen=STREAM_MAXLEN, approximate=True)
            await pipe.execute()
        except BaseException:
            # not written: the newest state stays, unsent items go back in front (oldest
            # dropped, and counted, if the bounded queue is full)
            for sym, h in books.items():
                self._books.setdefault(sym, h)
            for sym, h in positions.items():
                self._positions.setdefault(sym, h)
            for sym, h in risk.items():
                self._risk.setdefault(sym, h)
            self._predictions = _requeue(preds, self._predictions)
            self._events = _requeue(events, self._events, self.name)
            raise
        self.writes += 1
        telemetry.OPERATION_LATENCY.labels("redis_write").observe(time.perf_counter() - t0)


def _requeue(old: deque[Any], new: deque[Any], store: str = "") -> deque[Any]:
    merged: deque[Any] = deque(maxlen=new.maxlen)
    total = len(old) + len(new)
    if store and new.maxlen is not None and total > new.maxlen:
        telemetry.DROPPED.labels(store).inc(total - new.maxlen)
    merged.extend(old)
    merged.extend(new)
    return merged


def _levels(levels: list[tuple[int, int]], tick: Decimal, lot: Decimal) -> str:
    return json.dumps([[str(tick * p), str(lot * q)] for p, q in levels])


def _book_hash(b: dict[str, Any]) -> dict[Any, Any]:
    return {
        "timestamp": f"{b['timestamp']:.6f}",
        "sequence": str(b["sequence"]),
        "bids_json": _levels(b["bids"], b["tick"], b["lot"]),
        "asks_json": _levels(b["asks"], b["tick"], b["lot"]),
    }
