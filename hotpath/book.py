"""The hot path's view of the venue book: sequenced L2 deltas, gap detection and resync.

A delta whose sequence is not the next one marks the book out of sync; deltas are then
buffered until a snapshot arrives, and those newer than the snapshot are replayed on it.
While out of sync the book is not ``ready`` and the loop does not quote from it.
"""

from __future__ import annotations

from flashmm.book.l2 import L2Book
from flashmm.venue.base import BookDelta, BookSnapshot

_MAX_BUFFER = 10_000


class FeedBook:
    """Applies a venue's sequenced book stream to an ``L2Book``."""

    __slots__ = ("_buffer", "book", "gaps", "ready", "resyncs", "stale_dropped")

    def __init__(self, book: L2Book | None = None) -> None:
        self.book = book if book is not None else L2Book()
        self.ready = False
        self.gaps = 0
        self.resyncs = 0
        self.stale_dropped = 0
        self._buffer: list[BookDelta] = []

    def apply_delta(self, d: BookDelta) -> bool:
        """Apply one delta. Returns False when the book needs a snapshot (gap or not ready)."""
        book = self.book
        if not self.ready:
            if len(self._buffer) < _MAX_BUFFER:
                self._buffer.append(d)
            return False
        if d.seq <= book.seq:
            self.stale_dropped += 1
            return True
        if d.seq != book.seq + 1:
            self.gaps += 1
            self.ready = False
            self._buffer = [d]
            return False
        for side, price, lots in d.levels:
            book.set_level(side, price, lots)
        book.seq = d.seq
        return True

    def apply_snapshot(self, s: BookSnapshot) -> None:
        """Replace the book with a snapshot, then replay buffered deltas newer than it."""
        book = self.book
        book.clear()
        for price, lots in s.bids:
            book.set_level(1, price, lots)
        for price, lots in s.asks:
            book.set_level(-1, price, lots)
        book.seq = s.seq
        self.ready = True
        self.resyncs += 1
        pending, self._buffer = self._buffer, []
        for d in sorted(pending, key=lambda x: x.seq):
            if d.seq > book.seq and not self.apply_delta(d):
                break
