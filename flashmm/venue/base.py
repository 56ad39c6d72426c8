"""Venue interface: order batches out, acks/rejects/fills/book/trade events in.

The hot path depends only on this module; the in-process simulator and the Sei adapter
implement ``Venue``. Prices are integer ticks and sizes integer lots throughout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from flashmm.domain.orders import Fill, Side


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """A new limit order; ``client_id`` makes a retried submit idempotent."""

    client_id: str
    side: Side
    price: int
    lots: int
    post_only: bool = True


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """Cancel one of our orders by client id (and venue id once known)."""

    client_id: str
    venue_id: int | None = None


@dataclass(slots=True)
class OrderBatch:
    """One cycle's cancels and places, sent to the venue as one unit (cancels first)."""

    cancels: list[CancelOrder] = field(default_factory=list)
    places: list[PlaceOrder] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.cancels or self.places)


@dataclass(frozen=True, slots=True)
class OrderAccepted:
    client_id: str
    venue_id: int
    ts_ns: int


@dataclass(frozen=True, slots=True)
class OrderRejected:
    client_id: str
    reason: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class OrderCancelled:
    """The venue removed the order; ``lots`` is what was still resting."""

    client_id: str
    lots: int
    ts_ns: int


@dataclass(frozen=True, slots=True)
class OrderFilled:
    fill: Fill
    remaining: int


@dataclass(frozen=True, slots=True)
class CancelRejected:
    """A cancel for an order the venue no longer has (already filled or cancelled)."""

    client_id: str
    reason: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class BookDelta:
    """L2 level changes with a contiguous sequence number; ``levels`` is (side, price, lots)."""

    seq: int
    levels: tuple[tuple[int, int, int], ...]
    ts_ns: int


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """Full L2 book as of ``seq``: bids and asks best-first as (price, lots)."""

    seq: int
    bids: tuple[tuple[int, int], ...]
    asks: tuple[tuple[int, int], ...]
    ts_ns: int


@dataclass(frozen=True, slots=True)
class TradePrint:
    """A trade in the market (anyone's); ``aggressor`` is the taker side."""

    price: int
    lots: int
    aggressor: Side
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The feed is alive (e.g. a new block arrived) even if the book did not change."""

    ts_ns: int


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """An order the venue says is resting, for reconciliation."""

    client_id: str
    venue_id: int
    side: Side
    price: int
    lots: int


VenueEvent = (
    OrderAccepted
    | OrderRejected
    | OrderCancelled
    | OrderFilled
    | CancelRejected
    | BookDelta
    | BookSnapshot
    | TradePrint
    | Heartbeat
)


class Venue(Protocol):
    """What the hot path needs from a venue."""

    async def connect(self) -> None: ...

    async def submit(self, batch: OrderBatch) -> None:
        """Hand a batch to the venue; results arrive later as events."""

    def events(self) -> AsyncIterator[VenueEvent]:
        """Market data and order events, in the order the venue produced them."""

    async def snapshot(self) -> BookSnapshot: ...

    async def open_orders(self) -> list[OpenOrder]: ...

    async def close(self) -> None: ...
