"""The simulated venue's event core: our orders meet the background market in sim time.

Our batches reach the matcher after ``order_latency_s``; what the matcher says about our
orders (accepted, rejected, cancelled, filled) reaches us after ``report_latency_s``. Both
the backtest (as fast as the CPU allows) and the in-process async venue (paced by the wall
clock) drive this same core.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from itertools import count

from flashmm.domain.instrument import Instrument
from flashmm.domain.orders import Fill, Liquidity, Side
from flashmm.sim.market import SimMarket
from flashmm.sim.matching import Trade
from flashmm.sim.params import MarketParams, VenueParams
from flashmm.venue.base import (
    CancelRejected,
    OpenOrder,
    OrderAccepted,
    OrderBatch,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    VenueEvent,
)

US = 1  # our owner id in the matcher
_ARRIVE, _REPORT = 0, 1

ReportSink = Callable[[float, VenueEvent], None]
TradeSink = Callable[[float, list[Trade]], None]


class SimVenueCore:
    """Background market + our order flow, one discrete-event clock (seconds)."""

    def __init__(
        self,
        instrument: Instrument,
        market: MarketParams,
        venue: VenueParams,
        on_report: ReportSink,
        on_trades: TradeSink,
        record_deltas: bool = False,
    ) -> None:
        self.instrument = instrument
        self.vp = venue
        self.market = SimMarket(market, record_deltas=record_deltas)
        self.exchange = self.market.exchange
        self._heap: list[tuple[float, int, int, object]] = []
        self._seq = count()
        self._oids: dict[str, int] = {}  # our client id -> matcher order id
        self._fill_no = count(1)
        self.on_report = on_report
        self.on_trades = on_trades
        self.submitted = 0

    @property
    def time(self) -> float:
        return self.market.time

    def ns(self, t: float) -> int:
        return int(t * 1e9)

    def submit(self, batch: OrderBatch, now: float) -> None:
        """Our batch leaves now and reaches the matcher ``order_latency_s`` later."""
        self.submitted += 1
        heapq.heappush(self._heap, (now + self.vp.order_latency_s, next(self._seq), _ARRIVE, batch))

    def _report(self, t: float, ev: VenueEvent) -> None:
        heapq.heappush(self._heap, (t + self.vp.report_latency_s, next(self._seq), _REPORT, ev))

    def next_time(self) -> float:
        t = self.market.next_time
        if self._heap and self._heap[0][0] < t:
            return self._heap[0][0]
        return t

    def step(self) -> None:
        """Process the next event, whichever comes first."""
        heap = self._heap
        market = self.market
        if heap and heap[0][0] < market.next_time:
            t, _, kind, payload = heapq.heappop(heap)
            market.run_until(t)
            if kind == _ARRIVE:
                assert isinstance(payload, OrderBatch)
                self._arrive(payload, t)
            else:
                self.on_report(t, payload)  # type: ignore[arg-type]
            return
        market.step()
        if market.exchange.trades:
            trades = market.take_trades()
            t = market.time
            for tr in trades:
                if tr.maker_owner == US:
                    self._our_fill(tr, t)
            self.on_trades(t, trades)

    def run_until(self, t_end: float) -> None:
        while self.next_time() <= t_end:
            self.step()
        self.market.run_until(t_end)

    def _arrive(self, batch: OrderBatch, t: float) -> None:
        ex = self.exchange
        ts = self.ns(t)
        for c in batch.cancels:
            oid = self._oids.pop(c.client_id, 0)
            lots = ex.cancel(oid) if oid else 0
            if lots:
                self._report(t, OrderCancelled(c.client_id, lots, ts))
            else:
                self._report(t, CancelRejected(c.client_id, "order not open", ts))
        for p in batch.places:
            if p.client_id in self._oids:
                continue  # idempotent: a resubmitted client id is not placed twice
            if p.lots <= 0 or p.price <= 0:
                self._report(t, OrderRejected(p.client_id, "invalid price or size", ts))
                continue
            oid, resting = ex.place_limit(
                US,
                int(p.side),
                p.price,
                p.lots,
                p.client_id,
                post_only=self.vp.post_only or p.post_only,
            )
            if oid == 0:
                self._report(t, OrderRejected(p.client_id, "post-only order would cross", ts))
                continue
            self._report(t, OrderAccepted(p.client_id, oid, ts))
            if resting:
                self._oids[p.client_id] = oid
        trades = self.market.take_trades()
        if trades:
            self.on_trades(t, trades)

    def _our_fill(self, tr: Trade, t: float) -> None:
        side = Side(-tr.aggressor)
        if tr.maker_left == 0:
            self._oids.pop(tr.maker_tag, None)
        fill = Fill(
            fill_id=f"sim-{next(self._fill_no)}",
            client_id=tr.maker_tag,
            side=side,
            price=tr.price,
            lots=tr.lots,
            fee=self.instrument.fee(tr.price, tr.lots, maker=True),
            liquidity=Liquidity.MAKER,
            ts_ns=self.ns(t),
        )
        self._report(t, OrderFilled(fill, tr.maker_left))

    def open_orders(self) -> list[OpenOrder]:
        """Our resting orders as the matcher holds them."""
        out: list[OpenOrder] = []
        for cid, oid in self._oids.items():
            r = self.exchange.orders.get(oid)
            if r is not None:
                out.append(OpenOrder(cid, oid, Side(r.side), r.price, r.lots))
        return out
