"""``ReplayBook``: a replayed local book seen through the ``L2Book`` interface the engine and
the feature code read (best bid/ask, mid, depth), so both run unchanged on recorded data."""

from __future__ import annotations

from flashmm.book.l2 import L2Book
from flashmm.replay.core import ReplayCore


class ReplayBook(L2Book):
    """Read-only: ``refresh`` after each ``ReplayCore.advance``; depth is read from the core."""

    def __init__(self, core: ReplayCore) -> None:
        super().__init__()
        self.core = core

    def refresh(self) -> None:
        self.best_bid, self.best_ask = self.core.best()

    def depth(self, side: int, n: int) -> list[tuple[int, int]]:
        return self.core.depth(side, n)

    def lots_at(self, side: int, price: int) -> int:
        return next((q for p, q in self.core.depth(side, 64) if p == price), 0)

    def set_level(self, side: int, price: int, lots: int) -> None:
        raise TypeError("a replayed book is read-only: it follows the recording")
