"""A price-time-priority matching engine over integer ticks and lots.

Each price level is a FIFO deque of resting orders; cancels mark an order dead (lots = 0)
and adjust the aggregate at once, and dead entries are dropped when they reach the front of
their queue. Executions are appended to ``trades`` as plain tuples for the caller to drain,
and, when ``record_deltas`` is on, L2 level changes to ``deltas``.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

from flashmm.book.l2 import L2Book


class Resting:
    """An order resting in the book. ``tag`` carries the owner's client id."""

    __slots__ = ("lots", "oid", "owner", "price", "side", "tag")

    def __init__(self, oid: int, owner: int, side: int, price: int, lots: int, tag: str) -> None:
        self.oid = oid
        self.owner = owner
        self.side = side
        self.price = price
        self.lots = lots
        self.tag = tag


class Trade(NamedTuple):
    """One execution between a resting maker and an incoming taker."""

    price: int
    lots: int
    aggressor: int  # side of the taker: +1 buy, -1 sell
    maker_oid: int
    maker_owner: int
    maker_tag: str
    maker_left: int  # maker's remaining lots after this execution
    taker_oid: int
    taker_owner: int
    taker_tag: str


class Exchange:
    """One market's matching engine. Owner 0 is the background market by convention."""

    __slots__ = ("_next_oid", "_queues", "book", "deltas", "orders", "record_deltas", "trades")

    def __init__(self, record_deltas: bool = False) -> None:
        self.book = L2Book()
        self._queues: dict[int, dict[int, deque[Resting]]] = {1: {}, -1: {}}
        self.orders: dict[int, Resting] = {}
        self._next_oid = 1
        self.trades: list[Trade] = []
        self.record_deltas = record_deltas
        self.deltas: list[tuple[int, int, int]] = []

    def _level_changed(self, side: int, price: int, lots: int) -> None:
        self.book.set_level(side, price, lots)
        if self.record_deltas:
            self.deltas.append((side, price, lots))

    @property
    def next_order_id(self) -> int:
        return self._next_oid

    def reserve_ids(self, next_id: int) -> None:
        """Never hand out ids below ``next_id`` (a restarted venue continues its numbering)."""
        self._next_oid = max(self._next_oid, next_id)

    def would_cross(self, side: int, price: int) -> bool:
        """True if a limit order at ``price`` on ``side`` would take liquidity."""
        book = self.book
        if side > 0:
            return bool(book.best_ask) and price >= book.best_ask
        return bool(book.best_bid) and price <= book.best_bid

    def place_limit(
        self,
        owner: int,
        side: int,
        price: int,
        lots: int,
        tag: str = "",
        post_only: bool = False,
    ) -> tuple[int, int]:
        """Match what crosses, rest the remainder. Returns (order id, lots resting).

        A post-only order that would cross is refused: returns (0, 0) and changes nothing.
        """
        if lots <= 0 or price <= 0 or side not in (1, -1):
            raise ValueError(f"invalid order: side={side} price={price} lots={lots}")
        if post_only and self.would_cross(side, price):
            return 0, 0
        oid = self._next_oid
        self._next_oid = oid + 1
        left = self._match(oid, owner, side, lots, price, tag)
        if left > 0:
            order = Resting(oid, owner, side, price, left, tag)
            self.orders[oid] = order
            queues = self._queues[side]
            q = queues.get(price)
            if q is None:
                q = queues[price] = deque()
            q.append(order)
            levels = self.book.bids if side > 0 else self.book.asks
            self._level_changed(side, price, levels.get(price, 0) + left)
        return oid, left

    def market(self, owner: int, side: int, lots: int, tag: str = "") -> int:
        """Take up to ``lots`` from the other side at any price; returns lots filled."""
        if lots <= 0 or side not in (1, -1):
            raise ValueError(f"invalid market order: side={side} lots={lots}")
        oid = self._next_oid
        self._next_oid = oid + 1
        return lots - self._match(oid, owner, side, lots, 0, tag)

    def _match(self, oid: int, owner: int, side: int, lots: int, limit: int, tag: str) -> int:
        """Fill ``lots`` against the opposite side up to ``limit`` (0 = no limit)."""
        book = self.book
        opp = -side
        queues = self._queues[opp]
        levels = book.asks if opp < 0 else book.bids
        trades = self.trades
        orders = self.orders
        while lots > 0:
            best = book.best_ask if opp < 0 else book.best_bid
            if not best:
                break
            if limit and ((side > 0 and best > limit) or (side < 0 and best < limit)):
                break
            q = queues[best]
            level_lots = levels[best]
            while lots > 0 and q:
                maker = q[0]
                if maker.lots == 0:
                    q.popleft()
                    continue
                n = maker.lots if maker.lots < lots else lots
                maker.lots -= n
                lots -= n
                level_lots -= n
                trades.append(
                    Trade(
                        best,
                        n,
                        side,
                        maker.oid,
                        maker.owner,
                        maker.tag,
                        maker.lots,
                        oid,
                        owner,
                        tag,
                    )
                )
                if maker.lots == 0:
                    q.popleft()
                    del orders[maker.oid]
            if level_lots == 0:
                del queues[best]
            self._level_changed(opp, best, level_lots)
        return lots

    def cancel(self, oid: int) -> int:
        """Cancel a resting order; returns the lots removed (0 if not resting)."""
        order = self.orders.pop(oid, None)
        if order is None:
            return 0
        n = order.lots
        order.lots = 0
        side, price = order.side, order.price
        levels = self.book.bids if side > 0 else self.book.asks
        left = levels[price] - n
        if left == 0:
            del self._queues[side][price]
        self._level_changed(side, price, left)
        return n

    def queue_ahead(self, oid: int) -> int:
        """Lots resting ahead of an order at its price (its queue position)."""
        order = self.orders.get(oid)
        if order is None:
            return 0
        ahead = 0
        for o in self._queues[order.side][order.price]:
            if o is order:
                return ahead
            ahead += o.lots
        return ahead
