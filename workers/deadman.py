"""The dead-man's switch watcher: runs inside the per-host worker, one per market hosted here.

Every ``deadman.poll_interval_s`` it reads the market's heartbeat records from Redis
(``hotpath/heartbeat.py``); when the last cycle is older than ``deadman.timeout_s`` (the
process is gone, or its loop is stuck) it starts the ``DeadmanSwitch`` workflow once for
that incident, which halts the market durably, cancels its orders on the venue (verified)
and notifies. Then it retires the armed record if it is still the dead run's, so a later
restart of this worker does not act on the same incident again (a restart before that joins
the same workflow: the id is the incident's).

It is a worker plugin (``DeadmanPlugin``), so it lives exactly as long as the market's
host worker. Redis down means no verdict (logged): the switch never fires on missing data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import (
    Plugin,
    Replayer,
    ReplayerConfig,
    Worker,
    WorkerConfig,
    WorkflowReplayResult,
)

from hotpath.heartbeat import Beat, armed_key, heartbeat_key, verdict
from workflows.deadman import DeadmanInput

log = logging.getLogger(__name__)
Fire = Callable[[DeadmanInput], Awaitable[str]]

# delete the armed record only while it is still the one we acted on
_CLEAR = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class DeadmanWatcher:
    """Watches one market's heartbeat; ``fire`` starts the workflow (returns its id)."""

    def __init__(
        self,
        market: str,
        redis_url: str,
        fire: Fire,
        timeout_s: float = 1.5,
        poll_interval_s: float = 0.1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.market = market
        self.fire = fire
        self.timeout_s = timeout_s
        self.poll_interval_s = poll_interval_s
        self.clock = clock
        self._redis = aioredis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.fired: list[str] = []  # workflow ids started (or joined) by this watcher
        self._handled: set[tuple[str, float]] = set()
        self._errors = 0

    async def read(self) -> tuple[Beat | None, bytes | str | None]:
        """(the freshest record, the armed record's raw bytes)."""
        hb, armed = await self._redis.mget(heartbeat_key(self.market), armed_key(self.market))
        beats = [Beat.from_json(r) for r in (hb, armed) if r]
        beat = max(beats, key=lambda b: b.at) if beats else None
        return beat, armed

    async def check(self) -> str | None:
        """One look: the workflow id started for a dead hot path, else None."""
        beat, armed = await self.read()
        why = verdict(beat, self.clock(), self.timeout_s)
        if why is None or beat is None:
            return None
        incident = (beat.incarnation, beat.last_cycle_at)
        if incident in self._handled:
            return None
        log.error(
            "%s: hot path %s dead (%s); dead-man switch fires", self.market, beat.incarnation, why
        )
        wf_id = await self.fire(
            DeadmanInput(self.market, beat.incarnation, beat.last_cycle_at, why, beat.open_orders)
        )
        self._handled.add(incident)
        self.fired.append(wf_id)
        if armed is not None:
            await self._redis.eval(_CLEAR, 1, armed_key(self.market), armed)
        return wf_id

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.check()
                    self._errors = 0
                except (RedisError, OSError, TimeoutError) as e:
                    self._errors += 1
                    if self._errors == 1 or self._errors % 300 == 0:
                        log.warning("%s: heartbeats unreadable (%s); no verdict", self.market, e)
                except Exception:  # Temporal unreachable, a bad record: look again
                    log.exception("%s: dead-man check failed; retrying", self.market)
                await asyncio.sleep(self.poll_interval_s)
        finally:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.aclose()


def temporal_fire(client: Client) -> Fire:
    """Start the incident's DeadmanSwitch workflow (or find it already started)."""

    async def fire(inp: DeadmanInput) -> str:
        from workflows.starters import start_deadman

        handle = await start_deadman(client, inp)
        return handle.id

    return fire


class DeadmanPlugin(Plugin):
    """Runs a watcher for as long as the worker it is given to runs."""

    def __init__(self, watcher: DeadmanWatcher) -> None:
        self.watcher = watcher

    def name(self) -> str:
        return f"flashmm.deadman.{self.watcher.market}"

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        return config

    async def run_worker(
        self, worker: Worker, next_function: Callable[[Worker], Awaitable[None]]
    ) -> None:
        task = asyncio.create_task(self.watcher.run(), name=f"deadman-{self.watcher.market}")
        try:
            await next_function(worker)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def configure_replayer(self, config: ReplayerConfig) -> ReplayerConfig:
        return config

    def run_replayer(
        self,
        replayer: Replayer,
        histories: AsyncIterator[WorkflowHistory],
        next_function: Callable[
            [Replayer, AsyncIterator[WorkflowHistory]],
            AbstractAsyncContextManager[AsyncIterator[WorkflowReplayResult]],
        ],
    ) -> AbstractAsyncContextManager[AsyncIterator[WorkflowReplayResult]]:
        return next_function(replayer, histories)
