"""The asyncio quote loop for one market: venue events in, one batch per cycle out.

Cycles run every ``1/quote_hz`` seconds and at once when the book moves through a live
quote. A feed that goes quiet for ``stale_after_s`` makes the risk gate pull every quote;
a sequence gap makes the book resync from a snapshot before quoting again. Reconciliation
against the venue's open orders runs every ``reconcile_every_s``, and once before the first
quote: orders a previous run of this market left resting (a crash, a kill) are adopted, so
the first cycle's diff cancels them or keeps them as its own quotes, never unmanaged.

Every turn of the loop records its time (``last_cycle_at``): the heartbeat and ``/healthz``
carry it, and the dead-man's switch declares a hot path dead when it is too old. With
``stall_halt_s`` set, a loop that finds it went longer than that without turning (it was
stuck, so the switch may have fired) halts the market before doing anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from flashmm.ml.recording import SessionWriter
from flashmm.venue.base import (
    BookDelta,
    BookSnapshot,
    OrderBatch,
    TradePrint,
    Venue,
    VenueEvent,
)
from hotpath.book import FeedBook
from hotpath.engine import MarketMaker
from hotpath.sinks import StoreSinks

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoopConfig:
    quote_hz: float = 5.0
    reconcile_every_s: float = 5.0
    shutdown_timeout_s: float = 3.0
    snapshot_every_s: float = 1.0
    # after the venue confirms no open orders, keep reading events this long: fills from the
    # last blocks may still be on their way over the feed, which can lag the REST view
    shutdown_drain_s: float = 1.0
    # a gap between turns of the loop longer than this halts the market (0: off); the loop
    # turns at least every ``idle_turn_s`` so a slow quote rate is not a gap
    stall_halt_s: float = 0.0
    idle_turn_s: float = 0.25


class QuoteLoop:
    """Runs one ``MarketMaker`` against one ``Venue`` until stopped."""

    def __init__(
        self,
        mm: MarketMaker,
        venue: Venue,
        cfg: LoopConfig | None = None,
        sinks: StoreSinks | None = None,
        recorder: SessionWriter | None = None,
    ) -> None:
        self.mm = mm
        self.venue = venue
        self.cfg = cfg or LoopConfig()
        self.sinks = sinks
        self.recorder = recorder
        self._risk_state = mm.trading_state
        self.feed = FeedBook(mm.book)
        self._wake = asyncio.Event()
        self._reactive = False
        self.malformed = 0
        self.batches_sent = 0
        self.reconcile_orphans = 0
        self.venue_errors = 0
        self.last_cycle_mono = 0.0  # time.monotonic() of the last turn (0: not yet)
        self.last_cycle_at = 0.0  # time.time() of the same turn
        self.turns = 0
        self.orphans_at_start: int | None = None  # adopted before the first quote
        self.stopping = False

    def beat(self) -> None:
        """Record a turn of the loop (what the heartbeat and the liveness probe carry)."""
        self.last_cycle_mono = time.monotonic()
        self.last_cycle_at = time.time()
        self.turns += 1

    async def _check_stall(self) -> None:
        """Halt when the loop went longer than ``stall_halt_s`` without turning."""
        limit = self.cfg.stall_halt_s
        if not limit or not self.last_cycle_mono:
            return
        gap = time.monotonic() - self.last_cycle_mono
        if gap > limit and not self.mm.halted:
            reason = f"dead-man: no quote cycle for {gap:.1f}s (limit {limit:g}s)"
            log.error("%s; halting", reason)
            try:
                await self.halt(reason)
            except Exception:  # halted all the same; the cycles send the cancels again
                self.venue_errors += 1
                log.warning("cancels after a stall failed; retrying", exc_info=True)

    async def run(self, stop: asyncio.Event) -> None:
        """Quote until ``stop`` is set, then cancel everything and wait for confirmation."""
        await self.venue.connect()
        await self._resync()
        consumer = asyncio.create_task(self._consume(), name="venue-events")
        snaps = (
            asyncio.create_task(self._snapshots(), name="store-snapshots")
            if self.sinks is not None
            else None
        )
        recording = (
            asyncio.create_task(self._recording(), name="recorder")
            if self.recorder is not None
            else None
        )
        try:
            await self._quote_until(stop)
        finally:
            await self._shutdown()
            for task in (consumer, snaps, recording):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if self.sinks is not None:
                try:
                    self.sinks.final(self.mm)  # the run's last daily PnL and risk state
                except Exception:  # a store problem must never reach the loop
                    log.warning("final records for the stores failed", exc_info=True)

    async def _resync(self) -> None:
        snap = await self.venue.snapshot()
        self.feed.apply_snapshot(snap)
        self._record_snapshot(snap.ts_ns)
        self.mm.on_data(time.monotonic_ns())

    async def _quote_until(self, stop: asyncio.Event) -> None:
        period = 1.0 / self.cfg.quote_hz
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        next_reconcile = loop.time() + self.cfg.reconcile_every_s
        idle = self.cfg.idle_turn_s if self.cfg.stall_halt_s else period
        prepared_for = -1.0  # the scheduled cycle whose features were sampled ahead
        while not stop.is_set():
            lead = self._signal_lead_s()
            due = next_at - lead if lead and prepared_for != next_at else next_at
            timeout = min(idle, max(0.0, due - loop.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            await self._check_stall()
            reactive, self._reactive = self._reactive, False
            now = loop.time()
            if (
                not reactive
                and lead
                and prepared_for != next_at
                and next_at - lead <= now < next_at
            ):
                prepared_for = next_at
                self._prepare_signal()
                self.beat()
                continue
            if now >= next_at:
                next_at += period
                if next_at < now:  # fell behind: skip missed cycles, keep the cadence
                    next_at = now + period
                reactive = False
            elif not reactive:
                self.beat()
                continue
            try:
                await self._step(reactive, now >= next_reconcile)
            except Exception:  # the venue is down or misbehaving: keep the loop alive
                self.venue_errors += 1
                log.warning("venue call failed; retrying next cycle", exc_info=True)
            await self._check_stall()  # a cycle that itself took too long is a stall
            self.beat()
            if now >= next_reconcile:
                next_reconcile = now + self.cfg.reconcile_every_s

    def _signal_lead_s(self) -> float:
        """How far ahead of a scheduled cycle a background signal gets its features (0: the
        signal runs inline, or a recorder is attached: it records samples in the cycle)."""
        if self.recorder is not None or not self.feed.ready:
            return 0.0
        return float(getattr(self.mm.signal, "lead_ns", 0)) / 1e9

    def _prepare_signal(self) -> None:
        """Sample the next cycle's features now; the model runs on them on its own thread."""
        try:
            self.mm.prepare_signal(time.monotonic_ns())
        except Exception:  # the cycle then samples for itself; never stop the loop
            log.warning("preparing the model signal failed", exc_info=True)

    async def _step(self, reactive: bool, reconcile: bool) -> None:
        """One cycle: resync the book if needed, quote, and now and then reconcile."""
        if not self.feed.ready:
            await self._resync()
        if self.orphans_at_start is None:
            await self._adopt_orphans()
        t0 = time.perf_counter_ns()
        mm = self.mm
        sampled = mm.last_sample
        batch = mm.cycle(time.monotonic_ns(), reactive=reactive)
        if self.recorder is not None and mm.last_sample is not sampled and mm.last_sample:
            self.recorder.add(["F", *mm.last_sample])
        self.mm.timers["to_venue"].record(time.perf_counter_ns() - t0)
        await self._send(batch)
        if self.sinks is not None:  # records queue after the batch is on its way
            self._record(batch)
        after = getattr(self.mm.signal, "after_cycle", None)
        if after is not None:
            after(time.monotonic_ns())  # shadow model: after the batch is on its way
        if reconcile:
            orphans = self.mm.reconcile(await self.venue.open_orders(), time.monotonic_ns())
            self.reconcile_orphans += len(orphans)

    async def _adopt_orphans(self) -> None:
        """Before the first quote: take over what rests at the venue under our key (a
        previous run's orders), so this cycle's diff cancels them or keeps them as quotes.
        A venue that cannot be read raises, and no quote goes out until it can."""
        orphans = self.mm.reconcile(await self.venue.open_orders(), time.monotonic_ns())
        self.orphans_at_start = len(orphans)
        self.reconcile_orphans += len(orphans)
        if orphans:
            log.warning("adopted %d resting order(s) of a previous run", len(orphans))

    def _record_book(self, rec: SessionWriter, before: int, ev: BookDelta) -> None:
        """Only what the live book really applied, so a replay rebuilds the same book."""
        book = self.mm.book
        if not self.feed.ready or book.seq == before:
            return
        if book.seq == ev.seq and before == ev.seq - 1:
            rec.add(["D", ev.seq, ev.levels, ev.ts_ns])
        else:  # a resync replayed buffered deltas: record the resulting book instead
            self._record_snapshot(ev.ts_ns)

    def _record_snapshot(self, ts_ns: int) -> None:
        if self.recorder is not None and self.feed.ready:
            bids, asks = self.mm.book.snapshot()
            self.recorder.add(["S", self.mm.book.seq, bids, asks, ts_ns])

    async def _recording(self) -> None:
        """Compress and write the recorded events about once a second, off the loop."""
        assert self.recorder is not None
        rec = self.recorder
        try:
            while True:
                await asyncio.sleep(1.0)
                await asyncio.to_thread(rec.write, rec.take())
        finally:
            rec.write(rec.take())
            rec.close()

    def _record(self, batch: OrderBatch) -> None:
        """Queue this cycle's new orders, risk-state changes and the periodic snapshot."""
        sinks = self.sinks
        assert sinks is not None
        mm = self.mm
        for p in batch.places:
            o = mm.order(p.client_id)
            if o is not None:
                sinks.order(mm, o)
        if mm.trading_state is not self._risk_state:
            self._risk_state = mm.trading_state
            sinks.risk(mm)

    async def _snapshots(self) -> None:
        """Hot state and time series about once a second, between cycles (never inside)."""
        assert self.sinks is not None
        while True:
            await asyncio.sleep(self.cfg.snapshot_every_s)
            try:
                self.sinks.snapshot(self.mm)
            except Exception:  # a store problem must never reach the loop
                log.warning("snapshot for the stores failed", exc_info=True)

    async def cancel_all_and_confirm(self, timeout_s: float = 5.0) -> int:
        """Cancel every live order and wait until the venue shows none of ours; returns how
        many are still open at the deadline (0 = confirmed)."""
        await self._send(self.mm.pull_quotes(time.monotonic_ns()))
        deadline = time.monotonic() + timeout_s
        left = -1
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            try:
                left = len(await self.venue.open_orders())
            except Exception:  # venue unreachable: keep trying until the deadline
                continue
            if left == 0:
                return 0
            await self._send(self.mm.pull_quotes(time.monotonic_ns()))
        return left if left >= 0 else self.mm.open_order_count

    async def halt(self, reason: str) -> None:
        """Kill switch from the owner: HALTED and every live order cancelled now."""
        await self._send(self.mm.halt(reason, time.monotonic_ns()))
        self._wake.set()

    async def _send(self, batch: OrderBatch) -> None:
        if batch:
            self.batches_sent += 1
            await self.venue.submit(batch)

    async def _consume(self) -> None:
        mm = self.mm
        timers = mm.timers["feed_to_book"]
        async for ev in self.venue.events():
            try:
                if isinstance(ev, BookDelta):
                    t0 = time.perf_counter_ns()
                    before = mm.book.seq
                    ok = self.feed.apply_delta(ev)
                    timers.record(time.perf_counter_ns() - t0)
                    rec = self.recorder
                    if rec is not None:
                        self._record_book(rec, before, ev)
                    if not ok:
                        self._wake.set()
                        continue
                    if mm.on_market_data(time.monotonic_ns()):
                        self._reactive = True
                        self._wake.set()
                else:
                    self._dispatch(ev)
            except Exception:  # a bad event must never kill the loop
                self.malformed += 1
                log.exception("dropped malformed venue event %r", type(ev).__name__)

    def _dispatch(self, ev: VenueEvent) -> None:
        """Every event but a book delta: snapshots to the feed, the rest to the engine."""
        if isinstance(ev, BookSnapshot):
            self.feed.apply_snapshot(ev)
            self._record_snapshot(ev.ts_ns)
            return
        mm = self.mm
        done = mm.apply(ev, time.monotonic_ns())
        if isinstance(ev, TradePrint) and self.recorder is not None:
            self.recorder.add(["T", ev.ts_ns, ev.price, ev.lots, int(ev.aggressor)])
        sinks = self.sinks
        if sinks is None:
            return
        if done.fill is not None:
            sinks.fill(mm, done.fill)
        if done.order is not None:
            sinks.order(mm, done.order, done.reason)

    async def _drain(self) -> None:
        end = time.monotonic() + self.cfg.shutdown_drain_s
        while (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(0.1, left))
            self.beat()

    async def _shutdown(self) -> None:
        """Cancel every live order and wait (bounded) until the venue shows none of ours.
        The loop keeps beating meanwhile: a shutdown is not a death."""
        self.stopping = True
        self.beat()
        await self._send(self.mm.pull_quotes(time.monotonic_ns()))
        deadline = time.monotonic() + self.cfg.shutdown_timeout_s
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            self.beat()
            try:
                still_open = await self.venue.open_orders()
            except Exception:  # venue unreachable: keep trying until the deadline
                log.warning("venue unreachable while confirming cancels", exc_info=True)
                continue
            if not still_open:
                await self._drain()
                # the venue is the truth: nothing of ours rests there any more
                self.mm.reconcile([], time.monotonic_ns(), pending_timeout_s=0.0)
                return
            await self._send(self.mm.pull_quotes(time.monotonic_ns()))
        log.error("orders still open at the venue after shutdown timeout")
