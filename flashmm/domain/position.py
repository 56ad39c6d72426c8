"""Position accounting with average entry price, realized/unrealized PnL and fees."""

from __future__ import annotations

from dataclasses import dataclass

from flashmm.domain.instrument import Instrument
from flashmm.domain.orders import Fill


@dataclass(slots=True)
class Position:
    """Net position in lots with average-entry accounting, in quote currency.

    Realized PnL excludes fees; ``fees`` is the sum paid (rebates negative), and
    ``net_pnl(mark)`` = realized + unrealized - fees.
    """

    instrument: Instrument
    lots: int = 0
    avg_price: float = 0.0
    realized: float = 0.0
    fees: float = 0.0
    volume_lots: int = 0
    fill_count: int = 0

    def apply(self, fill: Fill) -> None:
        """Apply a fill: extend, reduce, close or flip the position."""
        signed = fill.lots * int(fill.side)
        self.fees += fill.fee
        self.volume_lots += fill.lots
        self.fill_count += 1
        q = self.lots
        if q == 0 or (q > 0) == (signed > 0):
            new_q = q + signed
            self.avg_price = (self.avg_price * abs(q) + fill.price * fill.lots) / abs(new_q)
            self.lots = new_q
            return
        closed = min(abs(q), fill.lots)
        direction = 1 if q > 0 else -1
        self.realized += (
            (fill.price - self.avg_price)
            * closed
            * direction
            * self.instrument.notional_per_tick_lot
        )
        new_q = q + signed
        if new_q == 0:
            self.avg_price = 0.0
        elif (new_q > 0) != (q > 0):
            self.avg_price = float(fill.price)
        self.lots = new_q

    def unrealized(self, mark_ticks: float) -> float:
        """Mark-to-market PnL of the open position at ``mark_ticks``."""
        if self.lots == 0:
            return 0.0
        return (mark_ticks - self.avg_price) * self.lots * self.instrument.notional_per_tick_lot

    def net_pnl(self, mark_ticks: float) -> float:
        """Realized + unrealized - fees."""
        return self.realized + self.unrealized(mark_ticks) - self.fees

    def notional(self, mark_ticks: float) -> float:
        """Absolute quote-currency value of the position at ``mark_ticks``."""
        return abs(self.lots) * mark_ticks * self.instrument.notional_per_tick_lot
