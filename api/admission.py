"""Read admission control (docs/api.md, "Limits"): the emergency stop's lane.

At most ``max_reads`` GET/HEAD requests under ``/v1/`` run at once; up to ``queue`` more
wait (parked, costing nothing) at most ``queue_timeout_s`` for a slot; the rest are refused
at once with 503 and ``Retry-After``. Bounding the reads in progress bounds the work they
put on the event loop and the database connections they hold (fewer than the pool has), so
writes and the emergency stop, which are never admitted here, do not queue behind a flood of
reads. Health, readiness and metrics are outside ``/v1/`` and never refused.

While an emergency stop (a POST to one of ``priority_paths``) is in progress, no new read
starts (those in progress finish; new ones wait in the queue or are refused), for at most
``pause_s`` per stop: the stop has the event loop and the database nearly to itself.

It sits inside the request pipeline (``api.middleware.Pipeline``), so a refusal has the
request id, the security headers and the standard error body, and is counted in metrics."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

from prometheus_client import Counter, Gauge
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_response
from flashmm.config.api import Admission

READS = frozenset({"GET", "HEAD"})
REFUSED = Counter(
    "flashmm_api_reads_refused_total", "Reads refused by admission control (503, busy)"
)
ACTIVE = Gauge("flashmm_api_reads_active", "Reads in progress (admitted)")


class ReadAdmission:
    def __init__(self, app: ASGIApp, limits: Admission) -> None:
        self.app = app
        self.limits = limits
        self.active = 0
        self.paused = 0  # emergency stops in progress
        self._priority = frozenset(limits.priority_paths)
        self._waiting: deque[asyncio.Future[None]] = deque()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in self._priority
        ):
            resume = self._pause()
            try:
                await self.app(scope, receive, send)
            finally:
                resume()
            return
        if (
            scope["type"] != "http"
            or scope["method"] not in READS
            or not str(scope["path"]).startswith("/v1/")
        ):
            await self.app(scope, receive, send)
            return
        if not await self._enter():
            REFUSED.inc()
            rid = str((scope.get("state") or {}).get("request_id", "-"))
            retry = {"Retry-After": str(self.limits.retry_after_s)}
            refusal = error_response(rid, 503, "the API is busy with reads: retry later", retry)
            await refusal(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._leave()

    async def _enter(self) -> bool:
        """True with a slot held (released by ``_leave``); False: refuse now."""
        if not self.paused and self.active < self.limits.max_reads:
            self.active += 1
            ACTIVE.set(self.active)
            return True
        if len(self._waiting) >= self.limits.queue or self.limits.queue_timeout_s <= 0:
            return False
        slot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(slot)
        try:
            await asyncio.wait_for(asyncio.shield(slot), self.limits.queue_timeout_s)
            return True  # a leaving read handed its slot over
        except TimeoutError:
            return self._abandon(slot)
        except BaseException:
            if self._abandon(slot):
                self._leave()  # handed over as we were cancelled: pass it on
            raise

    def _abandon(self, slot: asyncio.Future[None]) -> bool:
        """Stop waiting; True when the slot was handed over meanwhile (then it is held)."""
        if slot.done():
            return True
        slot.cancel()
        with contextlib.suppress(ValueError):
            self._waiting.remove(slot)
        return False

    def _leave(self) -> None:
        while self._waiting and not self.paused:
            slot = self._waiting.popleft()
            if not slot.done():
                slot.set_result(None)  # the slot passes on; ``active`` is unchanged
                return
        self.active -= 1
        ACTIVE.set(self.active)

    def _pause(self) -> Callable[[], None]:
        """Stop admitting reads; the returned function (also called after ``pause_s``)
        resumes, once."""
        self.paused += 1
        ended = False

        def resume() -> None:
            nonlocal ended
            if ended:
                return
            ended = True
            timer.cancel()
            self.paused -= 1
            while not self.paused and self._waiting and self.active < self.limits.max_reads:
                slot = self._waiting.popleft()
                if not slot.done():
                    self.active += 1
                    slot.set_result(None)
            ACTIVE.set(self.active)

        timer = asyncio.get_running_loop().call_later(self.limits.pause_s, resume)
        return resume
