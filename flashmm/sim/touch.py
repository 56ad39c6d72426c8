"""Time-weighted touch spread of a simulated book, sampled on a fixed clock grid.

The event cores do not report every change of the touch to Python (the compiled core runs
many events per stop), so the spread is sampled at the backtest's scheduled quote times.
Those times are a regular grid fixed in advance, independent of the market's events, so the
mean over the samples is an unbiased estimate of the time-weighted mean.
"""

from __future__ import annotations

from dataclasses import dataclass


def spread_bps(bid: int, ask: int) -> float:
    """Touch spread in basis points of the mid (ticks cancel out)."""
    return (ask - bid) / ((ask + bid) * 0.5) * 1e4


@dataclass(slots=True)
class TouchSpread:
    """Running sums for the market's touch spread and our own quoted spread."""

    samples: int = 0  # grid points seen
    two_sided: int = 0  # of which the book had a bid and an ask
    market_bps_sum: float = 0.0
    ours: int = 0  # of which we had a bid and an ask live
    ours_bps_sum: float = 0.0
    at_touch: int = 0  # of those, ours was the book's touch on both sides

    def add(self, best_bid: int, best_ask: int, our_bid: int = 0, our_ask: int = 0) -> None:
        """One grid point: the book's touch and our innermost live quotes (0 = none)."""
        self.samples += 1
        if best_bid and best_ask:
            self.two_sided += 1
            self.market_bps_sum += spread_bps(best_bid, best_ask)
        if our_bid and our_ask:
            self.ours += 1
            self.ours_bps_sum += spread_bps(our_bid, our_ask)
            if our_bid == best_bid and our_ask == best_ask:
                self.at_touch += 1

    @property
    def market_bps(self) -> float:
        """Time-weighted touch spread (bps) over the grid points with a two-sided book."""
        return self.market_bps_sum / self.two_sided if self.two_sided else 0.0

    @property
    def ours_bps(self) -> float:
        """Our quoted spread (bps) over the grid points where we quoted both sides."""
        return self.ours_bps_sum / self.ours if self.ours else 0.0

    @property
    def ours_share(self) -> float:
        """Share of the grid points where we quoted both sides."""
        return self.ours / self.samples if self.samples else 0.0

    @property
    def touch_share(self) -> float:
        """Share of the grid points where our two quotes were the book's touch."""
        return self.at_touch / self.samples if self.samples else 0.0
