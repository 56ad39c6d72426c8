"""Order manager: diff desired quotes against live orders, track acks/rejects/fills, PnL.

Diff policy: a live order whose price matches a desired quote on the same side is kept
(keeping its queue place) if its size is within ``keep_size_tolerance``; everything else
live is cancelled and the missing quotes are placed. Fills are de-duplicated by venue fill
id, so a replayed or repeated fill event never moves the position twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from flashmm.book.l2 import L2Book
from flashmm.domain.instrument import Instrument
from flashmm.domain.orders import SIDES, Fill, Order, OrderState, Side
from flashmm.domain.position import Position
from flashmm.venue.base import CancelOrder, OpenOrder, OrderBatch, PlaceOrder
from hotpath.quoting.quoter import Quote
from hotpath.risk import Exposure


class OrderManager:
    """Our orders and position in one market."""

    __slots__ = (
        "_fill_ids",
        "_next",
        "instrument",
        "live",
        "lot_value",
        "position",
        "prefix",
        "rejects",
    )

    def __init__(self, instrument: Instrument, prefix: str = "fmm") -> None:
        self.instrument = instrument
        self.lot_value = instrument.notional_per_tick_lot
        self.prefix = prefix
        self._next = 0
        self.live: dict[str, Order] = {}
        self.position = Position(instrument)
        self._fill_ids: set[str] = set()
        self.rejects = 0

    def next_client_id(self) -> str:
        self._next += 1
        return f"{self.prefix}-{self._next}"

    # --- exposure -----------------------------------------------------------------------
    def exposure(self) -> Exposure:
        buy = sell = 0
        notional = 0.0
        for o in self.live.values():
            rem = o.lots - o.filled_lots
            if o.side is Side.BUY:
                buy += rem
            else:
                sell += rem
            notional += o.price * rem
        return Exposure(self.position.lots, buy, sell, notional * self.lot_value)

    def others_touch(self, book: L2Book) -> tuple[int, int]:
        """Best bid and ask of everyone else: the book minus our resting orders (0 = none).
        A side where none of ours rests at or through the touch is the book's touch (the
        common case, no depth read)."""
        bid, ask = book.best_bid, book.best_ask
        at_bid = at_ask = False
        for o in self.live.values():
            if o.state is not OrderState.PENDING_NEW:
                if o.side > 0:
                    at_bid = at_bid or o.price >= bid
                else:
                    at_ask = at_ask or o.price <= ask
        if not (at_bid or at_ask):
            return bid, ask
        mine: dict[tuple[int, int], int] = {}
        for o in self.live.values():
            if o.state is not OrderState.PENDING_NEW:
                key = (int(o.side), o.price)
                mine[key] = mine.get(key, 0) + o.remaining
        if at_bid:
            bid = next((p for p, q in book.depth(1, 10) if q > mine.get((1, p), 0)), 0)
        if at_ask:
            ask = next((p for p, q in book.depth(-1, 10) if q > mine.get((-1, p), 0)), 0)
        return bid, ask

    # --- diff ---------------------------------------------------------------------------
    def diff(
        self, desired: Sequence[Quote], keep_tolerance: float = 0.25
    ) -> tuple[list[Order], list[Quote]]:
        """(live orders to cancel, quotes to place) to turn live orders into ``desired``."""
        wanted: dict[tuple[int, int], Quote] = {(q.side, q.price): q for q in desired}
        cancels: list[Order] = []
        kept: set[tuple[int, int]] = set()
        for o in self.live.values():
            if o.state is OrderState.PENDING_CANCEL:
                continue
            key = (int(o.side), o.price)
            q = wanted.get(key)
            if (
                q is not None
                and key not in kept
                and abs(o.remaining - q.lots) <= keep_tolerance * q.lots
            ):
                kept.add(key)
            else:
                cancels.append(o)
        places = [q for key, q in wanted.items() if key not in kept]
        return cancels, places

    # --- sending ------------------------------------------------------------------------
    def new_order(self, q: Quote, now_ns: int) -> Order:
        o = Order(
            self.next_client_id(), SIDES[q.side], q.price, q.lots, level=q.level, created_ns=now_ns
        )
        self.live[o.client_id] = o
        return o

    def mark_cancel(self, o: Order, now_ns: int = 0) -> CancelOrder:
        o.state = OrderState.PENDING_CANCEL
        o.cancel_ns = now_ns
        return CancelOrder(o.client_id, o.venue_id)

    def unconfirmed_cancels(self, now_ns: int, retry_ns: int) -> list[Order]:
        """Orders whose cancel went out ``retry_ns`` ago or more and is still unconfirmed:
        the cancel may have been lost, so it is sent again (cancels are idempotent)."""
        return [
            o
            for o in self.live.values()
            if o.state is OrderState.PENDING_CANCEL and now_ns - o.cancel_ns >= retry_ns
        ]

    def cancel_all(self, now_ns: int = 0, retry_ns: int | None = None) -> OrderBatch:
        """A batch cancelling every live order; orders already being cancelled are included
        again only when their cancel is older than ``retry_ns``."""
        out = []
        for o in list(self.live.values()):
            if o.state is not OrderState.PENDING_CANCEL or (
                retry_ns is not None and now_ns - o.cancel_ns >= retry_ns
            ):
                out.append(self.mark_cancel(o, now_ns))
        return OrderBatch(cancels=out)

    @staticmethod
    def to_place(o: Order) -> PlaceOrder:
        return PlaceOrder(o.client_id, o.side, o.price, o.lots)

    # --- venue events -------------------------------------------------------------------
    def on_accepted(self, client_id: str, venue_id: int) -> None:
        o = self.live.get(client_id)
        if o is None:
            return
        o.venue_id = venue_id
        if o.state is OrderState.PENDING_NEW:
            o.state = OrderState.OPEN

    def on_rejected(self, client_id: str, reason: str) -> None:
        o = self.live.pop(client_id, None)
        if o is not None:
            o.state = OrderState.REJECTED
            o.reject_reason = reason
            self.rejects += 1

    def on_cancelled(self, client_id: str) -> None:
        o = self.live.pop(client_id, None)
        if o is not None:
            o.state = OrderState.CANCELLED

    def on_fill(self, fill: Fill) -> bool:
        """Apply a fill once; returns False for a duplicate."""
        if fill.fill_id in self._fill_ids:
            return False
        self._fill_ids.add(fill.fill_id)
        self.position.apply(fill)
        o = self.live.get(fill.client_id)
        if o is not None:
            o.filled_lots += fill.lots
            if o.filled_lots >= o.lots:
                o.state = OrderState.FILLED
                del self.live[fill.client_id]
            elif o.state is not OrderState.PENDING_CANCEL:
                o.state = OrderState.PARTIALLY_FILLED
        return True

    # --- reconciliation -----------------------------------------------------------------
    def reconcile(
        self, venue_open: Iterable[OpenOrder], now_ns: int = 0, pending_timeout_s: float = 5.0
    ) -> tuple[list[str], list[str]]:
        """Align with the venue's view. Returns (orphans at the venue, orders we dropped).

        Orphans (resting at the venue, unknown here) are adopted so the next diff cancels
        them. Orders the venue shows are OPEN here. Orders we hold that the venue does not
        show are dropped, except in-flight ones (PENDING_NEW) younger than
        ``pending_timeout_s``: those may simply not have arrived yet.
        """
        seen: set[str] = set()
        orphans: list[str] = []
        for vo in venue_open:
            seen.add(vo.client_id)
            o = self.live.get(vo.client_id)
            if o is None:
                orphans.append(vo.client_id)
                self.live[vo.client_id] = Order(
                    vo.client_id,
                    vo.side,
                    vo.price,
                    vo.lots,
                    state=OrderState.OPEN,
                    venue_id=vo.venue_id,
                    level=-1,
                    created_ns=now_ns,
                )
            else:
                o.venue_id = vo.venue_id
                if o.state is OrderState.PENDING_NEW:
                    o.state = OrderState.OPEN
        timeout_ns = int(pending_timeout_s * 1e9)
        dropped = [
            cid
            for cid, o in self.live.items()
            if cid not in seen
            and (o.state is not OrderState.PENDING_NEW or now_ns - o.created_ns > timeout_ns)
        ]
        for cid in dropped:
            self.live.pop(cid).state = OrderState.CANCELLED
        return orphans, dropped
