"""The in-process venue: the simulated exchange behind the ``Venue`` interface, paced by
the wall clock, for paper trading and end-to-end tests of the async hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from flashmm.domain.instrument import Instrument
from flashmm.domain.orders import Side
from flashmm.sim.core import SimVenueCore
from flashmm.sim.matching import Trade
from flashmm.sim.params import MarketParams, VenueParams
from flashmm.venue.base import (
    BookDelta,
    BookSnapshot,
    OpenOrder,
    OrderBatch,
    TradePrint,
    VenueEvent,
)


class InProcessVenue:
    """Simulated market + our orders; events stream through an asyncio queue."""

    def __init__(
        self,
        instrument: Instrument,
        market: MarketParams,
        venue: VenueParams | None = None,
        pump_interval_s: float = 0.002,
    ) -> None:
        self.instrument = instrument
        self.core = SimVenueCore(
            instrument,
            market,
            venue or VenueParams(),
            self._on_report,
            self._on_trades,
            record_deltas=True,
        )
        self.pump_interval_s = pump_interval_s
        self._queue: asyncio.Queue[VenueEvent] = asyncio.Queue()
        self._seq = 0
        self._wall0 = 0.0
        self._sim0 = 0.0
        self._task: asyncio.Task[None] | None = None
        self.batches = 0

    # --- Venue protocol -----------------------------------------------------------------
    async def connect(self) -> None:
        if self._task is not None:
            return
        self.core.exchange.deltas.clear()
        self._wall0 = time.monotonic()
        self._sim0 = self.core.time
        self._task = asyncio.create_task(self._pump(), name="inprocess-venue")

    async def submit(self, batch: OrderBatch) -> None:
        self.batches += 1
        self.core.submit(batch, self.core.time)

    async def events(self) -> AsyncIterator[VenueEvent]:
        while True:
            yield await self._queue.get()

    async def snapshot(self) -> BookSnapshot:
        self._flush_deltas()
        bids, asks = self.core.exchange.book.snapshot()
        return BookSnapshot(self._seq, tuple(bids), tuple(asks), time.monotonic_ns())

    async def open_orders(self) -> list[OpenOrder]:
        return self.core.open_orders()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # --- pacing -------------------------------------------------------------------------
    def sim_now(self) -> float:
        return self._sim0 + (time.monotonic() - self._wall0)

    async def _pump(self) -> None:
        while True:
            self.core.run_until(self.sim_now())
            self._flush_deltas()
            await asyncio.sleep(self.pump_interval_s)

    def _flush_deltas(self) -> None:
        deltas = self.core.exchange.deltas
        if deltas:
            self._seq += 1
            self._queue.put_nowait(BookDelta(self._seq, tuple(deltas), time.monotonic_ns()))
            deltas.clear()

    def _on_report(self, t: float, ev: VenueEvent) -> None:
        self._flush_deltas()
        self._queue.put_nowait(ev)

    def _on_trades(self, t: float, trades: list[Trade]) -> None:
        self._flush_deltas()
        now = time.monotonic_ns()
        for tr in trades:
            self._queue.put_nowait(TradePrint(tr.price, tr.lots, Side(tr.aggressor), now))
