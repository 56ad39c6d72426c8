"""The hot path's heartbeat for the dead-man's switch, and the rule that reads it.

After its first quote cycle a hot path writes, every ``interval_s``, one JSON record (its
incarnation, the wall time of its last loop turn, its state, its open orders) to two Redis
keys:

* ``hotpath:heartbeat:{market}`` with a TTL of ``timeout_s``: gone soon after the process;
* ``hotpath:armed:{market}`` without a TTL: the last record stays after a crash, so a
  watcher that starts later still knows a hot path was running and may have left orders.

A clean shutdown that leaves no order at the venue deletes both (only if they are still its
own). ``verdict`` is the whole rule: a record whose last cycle is older than ``timeout_s``
is a dead hot path, whether the process is gone or its loop is stuck while the process
lives (the heartbeat task still writes, but the last cycle no longer moves).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from hotpath.loop import QuoteLoop

log = logging.getLogger(__name__)

# delete KEYS[1..n] only while the armed record is still this incarnation's
_RETIRE = """
local cur = redis.call('GET', KEYS[1])
if cur and cjson.decode(cur)['incarnation'] == ARGV[1] then
  return redis.call('DEL', unpack(KEYS))
end
return 0
"""


def heartbeat_key(market: str) -> str:
    return f"hotpath:heartbeat:{market}"


def armed_key(market: str) -> str:
    return f"hotpath:armed:{market}"


def new_incarnation() -> str:
    """Unique per hot-path run: host, process id and start time (ms)."""
    host = "".join(ch if ch.isalnum() else "-" for ch in socket.gethostname())[:40]
    return f"{host}-{os.getpid()}-{int(time.time() * 1000)}"


@dataclass(frozen=True, slots=True)
class Beat:
    market: str
    incarnation: str
    last_cycle_at: float  # time.time() of the loop's last turn
    at: float  # time.time() when this record was written
    state: str = ""  # risk state: active | reducing | halted
    open_orders: int = 0
    stopping: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Beat:
        d = json.loads(raw)
        return cls(
            str(d["market"]),
            str(d["incarnation"]),
            float(d["last_cycle_at"]),
            float(d["at"]),
            str(d.get("state", "")),
            int(d.get("open_orders", 0)),
            bool(d.get("stopping", False)),
        )


def verdict(beat: Beat | None, now: float, timeout_s: float) -> str | None:
    """Why the hot path that wrote ``beat`` counts as dead at ``now`` (None: alive, or no
    hot path has run here since the last clean shutdown)."""
    if beat is None:
        return None
    age = now - beat.last_cycle_at
    if age <= timeout_s:
        return None
    # still written well after its last cycle: the process lives, its loop does not turn
    how = "loop stuck" if beat.at - beat.last_cycle_at > timeout_s / 2 else "heartbeat missed"
    return f"{how}: last cycle {age:.1f}s ago (limit {timeout_s:g}s)"


def health(
    loop: QuoteLoop,
    timeout_s: float,
    started_mono: float,
    startup_grace_s: float = 60.0,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[bool, dict[str, Any]]:
    """The liveness answer: (alive, body). Alive while the loop's last turn is at most
    ``timeout_s`` old, or while it has not turned yet within ``startup_grace_s``."""
    now = clock()
    if not loop.turns:
        ok = now - started_mono <= startup_grace_s
        return ok, {"ok": ok, "state": "starting", "last_cycle_at": None, "age_s": None}
    age = now - loop.last_cycle_mono
    ok = age <= timeout_s
    return ok, {
        "ok": ok,
        "state": loop.mm.trading_state.value,
        "last_cycle_at": loop.last_cycle_at,
        "age_s": round(age, 3),
        "limit_s": timeout_s,
    }


class Heartbeat:
    """Writes the loop's heartbeat to Redis in the background; never blocks the loop."""

    def __init__(
        self,
        loop: QuoteLoop,
        market: str,
        redis_url: str,
        interval_s: float = 0.25,
        timeout_s: float = 1.5,
        incarnation: str | None = None,
    ) -> None:
        self.loop = loop
        self.market = market
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.incarnation = incarnation or new_incarnation()
        self._redis = aioredis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._task: asyncio.Task[None] | None = None
        self.writes = 0
        self.failures = 0

    def beat(self) -> Beat:
        ql = self.loop
        return Beat(
            self.market,
            self.incarnation,
            ql.last_cycle_at,
            time.time(),
            ql.mm.trading_state.value,
            ql.mm.open_order_count,
            ql.stopping,
        )

    async def write(self) -> None:
        raw = self.beat().to_json()
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(heartbeat_key(self.market), raw, px=max(1, int(self.timeout_s * 1000)))
        pipe.set(armed_key(self.market), raw)
        await pipe.execute()
        self.writes += 1

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="heartbeat")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            if not self.loop.turns:
                continue  # nothing of this run can rest at the venue before its first cycle
            try:
                await self.write()
            except (RedisError, OSError, TimeoutError) as e:
                self.failures += 1
                if self.failures == 1 or self.failures % 100 == 0:
                    log.warning("heartbeat not written (%s); the watcher may call us dead", e)

    async def stop(self, retire: bool) -> None:
        """Stop beating; with ``retire`` (a clean shutdown, no order left at the venue)
        delete the keys, so the watcher does not act on a hot path that ended well."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            if retire:
                keys = [armed_key(self.market), heartbeat_key(self.market)]
                await self._redis.eval(_RETIRE, len(keys), *keys, self.incarnation)
            elif self.loop.turns:
                await self.write()  # the last word: what the watcher will act on
        except (RedisError, OSError, TimeoutError) as e:
            log.warning("heartbeat not retired (%s)", e)
        finally:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.aclose()
