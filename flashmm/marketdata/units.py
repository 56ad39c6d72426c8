"""Decimal strings from a recording to the store's integer ticks and lots, refusing values off
the instrument's grid (a wrong ``--tick`` must fail loudly, never round into a wrong book)."""

from __future__ import annotations

from decimal import Decimal

from flashmm.marketdata.store import StoreError, StoreInstrument

_TOL = 1e-6  # of one tick/lot: float parsing error is ~1e-12 at these magnitudes


class Units:
    """Fast float-based conversion with an exactness check."""

    __slots__ = ("_inv_lot", "_inv_tick", "lot", "tick")

    def __init__(self, instrument: StoreInstrument) -> None:
        self.tick = float(Decimal(instrument.tick))
        self.lot = float(Decimal(instrument.lot))
        self._inv_tick = 1.0 / self.tick
        self._inv_lot = 1.0 / self.lot

    def ticks(self, price: str | float) -> int:
        """Price to ticks; ``StoreError`` if it is not a multiple of the tick or negative."""
        v = float(price) * self._inv_tick
        n = round(v)
        if abs(v - n) > _TOL or n < 0:
            raise StoreError(f"price {price} is not a non-negative multiple of tick {self.tick:g}")
        return n

    def lots(self, size: str | float) -> int:
        """Size to lots; ``StoreError`` if it is not a multiple of the lot or negative."""
        v = float(size) * self._inv_lot
        n = round(v)
        if abs(v - n) > _TOL or n < 0:
            raise StoreError(f"size {size} is not a non-negative multiple of lot {self.lot:g}")
        return n
