"""Instruments: tick and lot sizes, and the only place decimals meet integer ticks/lots."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal

from flashmm.domain.symbols import slug


@dataclass(frozen=True, slots=True)
class Instrument:
    """A spot market. Inside the engine prices are integer ticks and sizes integer lots.

    ``maker_fee_bps`` may be negative (a rebate); fees are charged on quote notional.
    """

    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    lot_size: Decimal
    maker_fee_bps: Decimal = Decimal("0")
    taker_fee_bps: Decimal = Decimal("0")
    # float figures the hot path multiplies by on every cycle: computed once from the decimals
    _ntl: float = field(init=False, repr=False, compare=False)
    _maker_bps: float = field(init=False, repr=False, compare=False)
    _taker_bps: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.tick_size <= 0:
            raise ValueError(f"{self.symbol}: tick_size must be positive, got {self.tick_size}")
        if self.lot_size <= 0:
            raise ValueError(f"{self.symbol}: lot_size must be positive, got {self.lot_size}")
        object.__setattr__(self, "_ntl", float(self.tick_size * self.lot_size))
        object.__setattr__(self, "_maker_bps", float(self.maker_fee_bps))
        object.__setattr__(self, "_taker_bps", float(self.taker_fee_bps))

    @property
    def slug(self) -> str:
        """The symbol as an id (``sei-usdc``): see ``flashmm.domain.symbols``."""
        return slug(self.symbol)

    @property
    def tick(self) -> float:
        """Tick size as a float, for fast arithmetic in quote units."""
        return float(self.tick_size)

    @property
    def lot(self) -> float:
        """Lot size as a float, for fast arithmetic in base units."""
        return float(self.lot_size)

    @property
    def notional_per_tick_lot(self) -> float:
        """Quote-currency value of one lot at a price of one tick."""
        return self._ntl

    def price_to_ticks(self, price: Decimal | str | float) -> int:
        """Round a price down to whole ticks; raises on a negative price."""
        p = Decimal(str(price))
        if p < 0:
            raise ValueError(f"{self.symbol}: negative price {p}")
        return int((p / self.tick_size).to_integral_value(rounding=ROUND_FLOOR))

    def ticks_to_price(self, ticks: int) -> Decimal:
        """Exact decimal price of a tick count."""
        return self.tick_size * ticks

    def size_to_lots(self, size: Decimal | str | float) -> int:
        """Round a size down to whole lots; raises on a negative size."""
        s = Decimal(str(size))
        if s < 0:
            raise ValueError(f"{self.symbol}: negative size {s}")
        return int((s / self.lot_size).to_integral_value(rounding=ROUND_FLOOR))

    def lots_to_size(self, lots: int) -> Decimal:
        """Exact decimal size of a lot count."""
        return self.lot_size * lots

    def notional(self, price_ticks: int, lots: int) -> float:
        """Quote-currency notional of ``lots`` at ``price_ticks``."""
        return price_ticks * lots * self._ntl

    def fee(self, price_ticks: int, lots: int, maker: bool) -> float:
        """Fee in quote currency (negative is a rebate)."""
        bps = self._maker_bps if maker else self._taker_bps
        return price_ticks * lots * self._ntl * bps / 10_000.0


SEI_USDC = Instrument(
    symbol="SEI/USDC",
    base="SEI",
    quote="USDC",
    tick_size=Decimal("0.0001"),
    lot_size=Decimal("1"),
    maker_fee_bps=Decimal("-0.5"),
    taker_fee_bps=Decimal("2.5"),
)
