"""An L2 book: aggregate lots per integer price level, with incremental best-price tracking.

Levels live in plain dicts keyed by tick price. The best bid/ask are kept up to date on
every change; when the best level empties, the next one is found by stepping tick by tick
(books are dense near the touch) and by a full scan only past ``_SCAN_LIMIT`` empty ticks.
"""

from __future__ import annotations

_SCAN_LIMIT = 64
BID = 1
ASK = -1


class L2Book:
    """Aggregate depth per price. ``side`` is +1 for bids, -1 for asks (as ``Side``)."""

    __slots__ = ("asks", "best_ask", "best_bid", "bids", "seq")

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.best_bid: int = 0  # 0 means no bids
        self.best_ask: int = 0  # 0 means no asks
        self.seq: int = 0

    def clear(self) -> None:
        """Drop every level (before a resync from a snapshot)."""
        self.bids.clear()
        self.asks.clear()
        self.best_bid = 0
        self.best_ask = 0

    def set_level(self, side: int, price: int, lots: int) -> None:
        """Set the absolute size at a level; ``lots == 0`` removes it."""
        if side > 0:
            levels = self.bids
            if lots > 0:
                levels[price] = lots
                if price > self.best_bid:
                    self.best_bid = price
            elif levels.pop(price, None) is not None and price == self.best_bid:
                self.best_bid = self._next_bid(price)
        else:
            levels = self.asks
            if lots > 0:
                levels[price] = lots
                if self.best_ask == 0 or price < self.best_ask:
                    self.best_ask = price
            elif levels.pop(price, None) is not None and price == self.best_ask:
                self.best_ask = self._next_ask(price)

    def add(self, side: int, price: int, delta: int) -> int:
        """Add ``delta`` lots (may be negative) at a level; returns the new level size."""
        levels = self.bids if side > 0 else self.asks
        new = levels.get(price, 0) + delta
        if new < 0:
            raise ValueError(f"level {price} would go negative ({new})")
        self.set_level(side, price, new)
        return new

    def _next_bid(self, below: int) -> int:
        levels = self.bids
        if not levels:
            return 0
        p = below - 1
        stop = below - _SCAN_LIMIT
        while p > stop:
            if p in levels:
                return p
            p -= 1
        return max(levels)

    def _next_ask(self, above: int) -> int:
        levels = self.asks
        if not levels:
            return 0
        p = above + 1
        stop = above + _SCAN_LIMIT
        while p < stop:
            if p in levels:
                return p
            p += 1
        return min(levels)

    @property
    def mid(self) -> float:
        """Mid price in ticks, or 0.0 when either side is empty."""
        if self.best_bid and self.best_ask:
            return (self.best_bid + self.best_ask) * 0.5
        return 0.0

    @property
    def spread(self) -> int:
        """Best ask minus best bid in ticks, or 0 when either side is empty."""
        if self.best_bid and self.best_ask:
            return self.best_ask - self.best_bid
        return 0

    def depth(self, side: int, n: int) -> list[tuple[int, int]]:
        """Top ``n`` levels of a side, best first, as (price, lots)."""
        if side > 0:
            levels, best, step = self.bids, self.best_bid, -1
        else:
            levels, best, step = self.asks, self.best_ask, 1
        if not best:
            return []
        out: list[tuple[int, int]] = []
        p = best
        misses = 0
        while len(out) < n and misses < _SCAN_LIMIT:
            q = levels.get(p)
            if q is None:
                misses += 1
            else:
                out.append((p, q))
                misses = 0
            p += step
        if len(out) < n and len(out) < len(levels):
            ordered = sorted(levels.items(), reverse=side > 0)
            return ordered[:n]
        return out

    def lots_at(self, side: int, price: int) -> int:
        """Size resting at a price on one side (0 if none)."""
        return (self.bids if side > 0 else self.asks).get(price, 0)

    def crossed(self) -> bool:
        """True if the best bid is at or above the best ask (never true for a sane book)."""
        return bool(self.best_bid and self.best_ask and self.best_bid >= self.best_ask)

    def snapshot(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """All levels as (bids best-first, asks best-first)."""
        return sorted(self.bids.items(), reverse=True), sorted(self.asks.items())
