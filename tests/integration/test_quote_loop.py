"""The async quote loop end to end against the real in-process simulated venue.

Each test runs a ``QuoteLoop`` for a second or two of wall time at 20 Hz. Venue behaviour
(lost deltas, junk events, a silent feed) is injected by subclassing ``InProcessVenue`` and
filtering its event stream; fills and submitted batches are recorded on the way through.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from flashmm.domain.instrument import SEI_USDC
from flashmm.domain.orders import Fill, Side
from flashmm.sim.inprocess import InProcessVenue
from flashmm.sim.params import MarketParams, VenueParams
from flashmm.venue.base import BookDelta, OrderBatch, OrderFilled, PlaceOrder, VenueEvent
from hotpath.engine import MarketMaker
from hotpath.loop import LoopConfig, QuoteLoop
from hotpath.quoting.params import QuoteParams
from hotpath.risk import DenyReason, RiskLimits, TradingState

HZ = 20.0
LOT_VALUE = SEI_USDC.notional_per_tick_lot


class TapVenue(InProcessVenue):
    """The in-process venue with a tap on its event stream and on submitted batches."""

    def __init__(self, market: MarketParams, venue: VenueParams | None = None) -> None:
        super().__init__(SEI_USDC, market, venue)
        self.fills: list[Fill] = []
        # (place, engine best bid, engine best ask) as the batch went out
        self.places: list[tuple[PlaceOrder, int, int]] = []
        self.watch_book: Any = None  # the engine's book, to record what each place was based on
        self.on_fill: Callable[[Fill], None] | None = None
        self.drop_delta_after: int | None = None  # drop the first delta after this many
        self.deltas_seen = 0
        self.dropped: list[int] = []
        self.inject: list[object] = []  # yielded (once) before the next real event
        self.block_deltas = False
        self.deltas_blocked = 0
        self.lose_next_cancels = False  # lose the cancels of the next batch that has some
        self.lost_cancels: list[str] = []

    async def submit(self, batch: OrderBatch) -> None:
        if self.lose_next_cancels and batch.cancels:
            self.lose_next_cancels = False
            self.lost_cancels = [c.client_id for c in batch.cancels]
            batch = OrderBatch(places=list(batch.places))
        b = self.watch_book
        for p in batch.places:
            self.places.append((p, b.best_bid if b else 0, b.best_ask if b else 0))
        await super().submit(batch)

    async def events(self) -> AsyncIterator[VenueEvent]:  # type: ignore[override]
        async for ev in super().events():
            while self.inject:
                yield self.inject.pop(0)  # type: ignore[misc]
            if isinstance(ev, BookDelta):
                self.deltas_seen += 1
                if self.block_deltas:
                    self.deltas_blocked += 1
                    continue
                if (
                    self.drop_delta_after is not None
                    and not self.dropped
                    and self.deltas_seen > self.drop_delta_after
                ):
                    self.dropped.append(ev.seq)
                    continue
            elif isinstance(ev, OrderFilled):
                # recorded right before the loop applies it (no await in between)
                self.fills.append(ev.fill)
                if self.on_fill is not None:
                    self.on_fill(ev.fill)
            yield ev


def _market(**kw: Any) -> MarketParams:
    base: dict[str, Any] = {"seed": 11, "warmup_s": 5.0}
    base.update(kw)
    return MarketParams(**base)


def _setup(
    market: MarketParams | None = None,
    limits: RiskLimits | None = None,
    quoting: QuoteParams | None = None,
    hz: float = HZ,
    shutdown_timeout_s: float = 3.0,
    cancel_retry_s: float = 1.0,
) -> tuple[QuoteLoop, TapVenue, MarketMaker]:
    venue = TapVenue(market or _market())
    mm = MarketMaker(
        SEI_USDC, quoting or QuoteParams(), limits or RiskLimits(), cancel_retry_s=cancel_retry_s
    )
    venue.watch_book = mm.book
    cfg = LoopConfig(quote_hz=hz, reconcile_every_s=0.5, shutdown_timeout_s=shutdown_timeout_s)
    loop = QuoteLoop(mm, venue, cfg)
    return loop, venue, mm


class Running:
    """A started loop: ``stop()`` ends it and waits (bounded) for ``run`` to return."""

    def __init__(self, loop: QuoteLoop) -> None:
        self.loop = loop
        self.stop_event = asyncio.Event()
        self.task = asyncio.create_task(loop.run(self.stop_event))

    def alive(self) -> None:
        if self.task.done():
            self.task.result()  # raises if the loop crashed
            pytest.fail("quote loop returned before it was stopped")

    async def stop(self) -> None:
        if not self.task.done():
            self.stop_event.set()
            await asyncio.wait_for(self.task, 10)


@contextlib.asynccontextmanager
async def running(loop: QuoteLoop) -> AsyncIterator[Running]:
    r = Running(loop)
    try:
        yield r
        r.alive()
    finally:
        try:
            await r.stop()
        finally:
            await loop.venue.close()


async def wait_until(pred: Callable[[], bool], timeout: float, r: Running | None = None) -> float:
    """Poll ``pred`` every 10 ms; returns the seconds it took, fails after ``timeout``."""
    t0 = time.monotonic()
    while not pred():
        if r is not None:
            r.alive()
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)
    return time.monotonic() - t0


async def two_sided(venue: InProcessVenue) -> bool:
    sides = {o.side for o in await venue.open_orders()}
    return sides == {Side.BUY, Side.SELL}


async def wait_two_sided(venue: InProcessVenue, r: Running, timeout: float = 5.0) -> None:
    t0 = time.monotonic()
    while not await two_sided(venue):
        r.alive()
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"no two-sided quotes at the venue within {timeout}s")
        await asyncio.sleep(0.02)


# --- (a) two-sided quotes that never cross -----------------------------------------------


async def test_quotes_rest_on_both_sides_and_never_cross() -> None:
    loop, venue, mm = _setup()
    samples = 0
    async with running(loop) as r:
        t_end = time.monotonic() + 2.0
        while time.monotonic() < t_end:
            await asyncio.sleep(0.05)
            r.alive()
            ours = await venue.open_orders()
            vb = venue.core.exchange.book
            bids = [o.price for o in ours if o.side is Side.BUY]
            asks = [o.price for o in ours if o.side is Side.SELL]
            if bids and asks:
                assert max(bids) < min(asks)
            for p in bids:
                assert not vb.best_ask or p < vb.best_ask
            for p in asks:
                assert not vb.best_bid or p > vb.best_bid
            samples += 1
        ours = await venue.open_orders()
        assert {o.side for o in ours} == {Side.BUY, Side.SELL}
        assert all(o.client_id.startswith("fmm-") and o.lots > 0 for o in ours)
        assert mm.stats.cycles >= 20  # ~40 expected at 20 Hz
        assert loop.batches_sent > 0
    assert samples >= 10
    # every order the loop sent was inside the book it was computed from (post-only)
    assert venue.places
    for p, bid, ask in venue.places:
        if p.side is Side.BUY:
            assert p.price < ask, (p, bid, ask)
        else:
            assert p.price > bid, (p, bid, ask)


# --- (b) fills and position -----------------------------------------------------------------


async def test_fills_move_position_consistently() -> None:
    loop, venue, mm = _setup(_market(noise_market_rate=12.0, informed_rate=6.0))
    async with running(loop) as r:
        await wait_until(lambda: len(venue.fills) >= 3, 8.0, r)
        await asyncio.sleep(0.5)
    placed = {p.client_id for p, _, _ in venue.places}
    fills = venue.fills
    pos = mm.om.position
    assert len(fills) >= 3
    assert len({f.fill_id for f in fills}) == len(fills)
    assert all(f.client_id in placed for f in fills)  # only our own orders fill
    signed = sum(int(f.side) * f.lots for f in fills)
    assert pos.lots == signed
    assert pos.fill_count == len(fills) == mm.stats.fills
    assert pos.volume_lots == sum(f.lots for f in fills)
    assert pos.fees == pytest.approx(sum(f.fee for f in fills))
    assert pos.fees < 0  # maker rebate
    mark = mm.book.mid
    assert mark > 0
    net = pos.net_pnl(mark)
    assert pos.realized + pos.unrealized(mark) - pos.fees == pytest.approx(net)
    # independent of the average-cost bookkeeping: cash flow + marked inventory - fees
    cash = -sum(int(f.side) * f.price * f.lots for f in fills) * LOT_VALUE
    assert net == pytest.approx(cash + signed * mark * LOT_VALUE - pos.fees, abs=1e-6)


# --- (c) position limit -------------------------------------------------------------------


async def test_position_limit_holds_under_informed_flow() -> None:
    limit = 100.0
    market = _market(informed_rate=30.0, informed_edge=0.3, seed=5)
    limits = RiskLimits(max_position_notional=limit)
    loop, venue, mm = _setup(market, limits, QuoteParams(order_notional=30.0))
    notionals: list[float] = []

    def record(f: Fill) -> None:
        # called just before the loop applies f: add it to the position ourselves
        lots = mm.om.position.lots + int(f.side) * f.lots
        notionals.append(abs(lots) * f.price * LOT_VALUE)

    venue.on_fill = record
    async with running(loop) as r:
        t_end = time.monotonic() + 3.0
        while time.monotonic() < t_end:
            await asyncio.sleep(0.05)
            r.alive()
    assert len(notionals) >= 5, "informed flow should produce fills"
    # the engine checks each order's worst case at its own price; allow only price drift
    # between ticks (≪ one order, which is 30 USDC here)
    assert max(notionals) <= limit * 1.005, max(notionals)
    # the limit really bound: orders were denied for it
    assert mm.risk.denials[DenyReason.POSITION_LIMIT] > 0
    assert abs(mm.om.position.lots) * mm.book.mid * LOT_VALUE <= limit * 1.02


# --- (d) shutdown ---------------------------------------------------------------------------


async def test_stop_cancels_everything() -> None:
    loop, venue, mm = _setup()
    r = Running(loop)
    try:
        await wait_two_sided(venue, r)
        await asyncio.sleep(0.3)
        assert await venue.open_orders()
        await r.stop()
        assert await venue.open_orders() == []
        # nothing still in flight lands after run() returned (venue keeps running)
        await asyncio.sleep(0.2)
        assert await venue.open_orders() == []
        assert mm.stats.cycles > 0
    finally:
        await r.stop()
        await venue.close()


async def test_stop_cancels_everything_even_if_a_cancel_is_lost() -> None:
    # quotes 20+ ticks from the mid: nothing fills in a second, so a stuck order stays stuck
    quoting = QuoteParams(min_half_spread_ticks=20.0, max_half_spread_ticks=40.0)
    loop, venue, _ = _setup(quoting=quoting, shutdown_timeout_s=1.0, cancel_retry_s=0.2)
    r = Running(loop)
    try:
        await wait_two_sided(venue, r)
        await asyncio.sleep(0.2)
        venue.lose_next_cancels = True  # one lost message, as on a flaky connection
        await r.stop()
        assert venue.lost_cancels  # the shutdown (or last cycle) cancels were lost
        assert await venue.open_orders() == []
    finally:
        await r.stop()
        await venue.close()


async def test_stop_before_any_quote_is_clean() -> None:
    loop, venue, _ = _setup()
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(loop.run(stop), 5)
    try:
        assert await venue.open_orders() == []
    finally:
        await venue.close()


# --- (e) halt -------------------------------------------------------------------------------


async def test_halt_pulls_quotes_and_stops_placing() -> None:
    loop, venue, mm = _setup()
    async with running(loop) as r:
        await wait_two_sided(venue, r)
        await asyncio.sleep(0.2)
        cycles = mm.stats.cycles
        # the kill switch: the owner sends the cancel batch halt() returns
        batch = mm.halt("test")
        assert batch.cancels and not batch.places
        await venue.submit(batch)
        n_places = len(venue.places)
        took = await wait_until(lambda: not venue.core.open_orders(), 1.0, r)
        assert took < 0.5
        await asyncio.sleep(0.5)  # ~10 more cycles
        assert mm.stats.cycles > cycles + 5  # still cycling
        assert await venue.open_orders() == []
        assert len(venue.places) == n_places  # no new places while halted
        assert mm.trading_state is TradingState.HALTED
        assert mm.quoted == (0, 0)
        assert mm.risk.denials[DenyReason.HALTED] > 0


async def test_loop_halt_pulls_quotes_at_once() -> None:
    loop, venue, mm = _setup(shutdown_timeout_s=0.5)
    async with running(loop) as r:
        await wait_two_sided(venue, r)
        await asyncio.sleep(0.2)
        await loop.halt("test")
        n_places = len(venue.places)
        took = await wait_until(lambda: not venue.core.open_orders(), 0.5, r)
        assert took < 0.2
        await asyncio.sleep(0.3)
        assert len(venue.places) == n_places
        assert mm.trading_state is TradingState.HALTED


async def test_lost_halt_cancels_are_sent_again_by_later_cycles() -> None:
    loop, venue, mm = _setup(shutdown_timeout_s=0.5, cancel_retry_s=0.2)
    async with running(loop) as r:
        await wait_two_sided(venue, r)
        await asyncio.sleep(0.2)
        mm.halt("test")  # the batch it returns is dropped on the floor: a lost message
        n_places = len(venue.places)
        await asyncio.sleep(0.5)  # ~10 cycles at 20 Hz
        r.alive()
        open_now = await venue.open_orders()
        assert len(venue.places) == n_places
        assert open_now == []


# --- (f) sequence gap -----------------------------------------------------------------------


async def test_dropped_delta_triggers_gap_resync_and_quoting_continues() -> None:
    loop, venue, mm = _setup()
    venue.drop_delta_after = 30
    async with running(loop) as r:
        await wait_until(lambda: bool(venue.dropped), 5.0, r)
        cycles = mm.stats.cycles
        await wait_until(lambda: loop.feed.resyncs >= 2, 2.0, r)
        assert loop.feed.gaps >= 1
        await wait_until(lambda: loop.feed.ready, 1.0, r)
        await asyncio.sleep(0.5)
        assert mm.stats.cycles > cycles + 5
        await wait_two_sided(venue, r, timeout=2.0)
        assert loop.feed.ready
        # the book keeps advancing in sequence after the resync: no further gap
        seq = mm.book.seq
        await wait_until(lambda: mm.book.seq > seq, 2.0, r)
    assert loop.feed.gaps == 1  # exactly the one dropped delta
    assert loop.malformed == 0


# --- (g) malformed events -------------------------------------------------------------------


async def test_malformed_events_are_counted_and_loop_keeps_running() -> None:
    loop, venue, mm = _setup()
    async with running(loop) as r:
        await wait_two_sided(venue, r)
        cycles = mm.stats.cycles
        venue.inject.extend([object(), "garbage", 42])
        await wait_until(lambda: not venue.inject and loop.malformed >= 3, 2.0, r)
        assert loop.malformed == 3
        await asyncio.sleep(0.5)
        assert mm.stats.cycles > cycles + 5
        await wait_two_sided(venue, r, timeout=2.0)
        # market data still flows into the book after the junk
        seq = mm.book.seq
        await wait_until(lambda: mm.book.seq > seq, 2.0, r)
        assert loop.feed.ready
    assert loop.malformed == 3


async def test_malformed_fill_event_does_not_kill_loop() -> None:
    loop, venue, mm = _setup()
    async with running(loop) as r:
        await wait_two_sided(venue, r)
        # a fill event whose payload is not a Fill
        venue.inject.append(OrderFilled(fill=None, remaining=0))  # type: ignore[arg-type]
        await wait_until(lambda: loop.malformed >= 1, 2.0, r)
        await asyncio.sleep(0.3)
        await wait_two_sided(venue, r, timeout=2.0)
    assert loop.malformed == 1
    assert mm.om.position.fill_count == len(venue.fills)


# --- (h) stale feed ---------------------------------------------------------------------------


async def test_stale_feed_pulls_quotes() -> None:
    stale_after = 0.5
    loop, venue, mm = _setup(limits=RiskLimits(stale_after_s=stale_after))
    async with running(loop) as r:
        await wait_two_sided(venue, r)
        await asyncio.sleep(0.3)
        venue.block_deltas = True
        took = await wait_until(lambda: not venue.core.open_orders(), stale_after + 1.0, r)
        # pulled because of staleness, not earlier (the last delta came just before the cut)
        assert took >= stale_after - 0.2
        assert took <= stale_after + 0.5
        n_places = len(venue.places)
        await asyncio.sleep(0.5)
        assert venue.deltas_blocked > 0  # the market kept moving behind the silence
        assert await venue.open_orders() == []
        assert len(venue.places) == n_places  # no new quotes while stale
        assert mm.risk.denials[DenyReason.STALE_MARKET_DATA] > 0
        assert mm.trading_state is TradingState.ACTIVE  # stale pulls quotes, never halts
        # the feed comes back → quoting resumes
        venue.block_deltas = False
        await wait_two_sided(venue, r, timeout=3.0)
        assert loop.feed.gaps >= 1  # the blocked deltas show up as a gap → resync
        assert loop.feed.resyncs >= 2
