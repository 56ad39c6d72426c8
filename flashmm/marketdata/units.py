"""Decimal strings from a recording to the store's integer ticks and lots, refusing values off
the instrument's grid (a wrong ``--tick`` must fail loudly, never round into a wrong book).

Parsing is exact integer arithmetic on the digits (no float rounding at 1e10 lots)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from flashmm.marketdata.store import StoreError, StoreInstrument


def _digits(step: Decimal) -> int:
    exp = step.normalize().as_tuple().exponent
    return max(0, -exp) if isinstance(exp, int) else 0


class _Grid:
    __slots__ = ("digits", "name", "scale", "step", "units")

    def __init__(self, step: str, name: str) -> None:
        d = Decimal(step)
        self.step = step
        self.name = name
        self.digits = _digits(d)
        self.scale = int(10**self.digits)
        self.units = int(d * self.scale)  # the step in units of 10^-digits

    def __call__(self, value: str | float | int) -> int:
        text = value if isinstance(value, str) else repr(value)
        fixed = self._fixed(text)
        if fixed is None or fixed < 0 or fixed % self.units:
            raise StoreError(
                f"{self.name} {value} is not a non-negative multiple of {self.name} step "
                f"{self.step}"
            )
        return fixed // self.units

    def _fixed(self, text: str) -> int | None:
        """``text`` × 10^digits as an exact int, or None if it has finer digits than that."""
        body = text.strip()
        if "e" in body or "E" in body:
            try:
                scaled = Decimal(body) * self.scale
            except InvalidOperation:
                return None
            whole_units: int = int(scaled)
            return whole_units if scaled == scaled.to_integral_value() else None
        whole, _, frac = body.partition(".")
        if len(frac) > self.digits:
            if frac[self.digits :].strip("0"):
                return None
            frac = frac[: self.digits]
        try:
            w = int(whole) if whole not in ("", "-", "+") else 0
            f = int(frac.ljust(self.digits, "0")) if self.digits else 0
        except ValueError:
            return None
        return w * self.scale - f if body.startswith("-") else w * self.scale + f


class Units:
    """Exact conversion of prices to ticks and sizes to lots."""

    __slots__ = ("lot", "lots", "tick", "ticks")

    def __init__(self, instrument: StoreInstrument) -> None:
        self.tick = float(Decimal(instrument.tick))
        self.lot = float(Decimal(instrument.lot))
        self.ticks = _Grid(instrument.tick, "price")
        self.lots = _Grid(instrument.lot, "size")
