"""The engine's small types: the model signal's protocols, the advisor's bounded adjustment,
the cycle's counters, what a venue event changed, the risk side of an engine at one moment
(``RiskView``, what the owner reads instead of the risk engine), and the reduce-only filter
of a cycle's quotes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from flashmm.domain.market_state import Activity
from flashmm.domain.market_state import activity as combined_activity
from flashmm.domain.orders import Fill, Order
from hotpath.quoting.quoter import Quote
from hotpath.risk import DenyReason, RiskLimits, TradingState


class Signal(Protocol):
    """A directional signal: (direction −1..1, confidence 0..1) from the feature vector.

    ``uses_features`` False means the engine need not compute the 64 features at all."""

    uses_features: bool

    def predict(self, features: list[float], ts_ns: int, mid: float) -> tuple[float, float]: ...

    def observe(self, ts_ns: int, mid: float) -> None:
        """Every book change (scores past predictions)."""


class BackgroundSignal(Signal, Protocol):
    """A signal computed off the cycle: ``submit`` hands it a sampled feature row (never
    blocks), ``current`` is the latest fresh result (or a fallback), at once."""

    lead_ns: int

    def submit(self, features: list[float], ts_ns: int, mid: float) -> None: ...

    def current(self, features: list[float], ts_ns: int, mid: float) -> tuple[float, float]: ...


class NoSignal:
    """The neutral signal, used when no model is loaded."""

    uses_features = False

    def predict(self, features: list[float], ts_ns: int, mid: float) -> tuple[float, float]:
        return 0.0, 0.0

    def observe(self, ts_ns: int, mid: float) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Adjustment:
    """A bounded nudge from a slow advisor (e.g. an LLM regime assessment): it may only
    widen spreads (``spread_mult`` ≥ 1) or damp the signal (``signal_scale`` in [0, 1])."""

    spread_mult: float = 1.0
    signal_scale: float = 1.0
    reason: str = ""

    def __post_init__(self) -> None:
        if not 1.0 <= self.spread_mult <= 3.0:
            raise ValueError(f"spread_mult must be in [1, 3], got {self.spread_mult}")
        if not 0.0 <= self.signal_scale <= 1.0:
            raise ValueError(f"signal_scale must be in [0, 1], got {self.signal_scale}")


@dataclass(slots=True)
class CycleStats:
    cycles: int = 0
    reactive_cycles: int = 0
    quotes_sent: int = 0
    cancels_sent: int = 0
    fills: int = 0
    placed_buy: int = 0
    placed_sell: int = 0
    fills_buy: int = 0
    fills_sell: int = 0
    quoted_spread_sum: float = 0.0
    quoted_spread_n: int = 0
    market_spread_sum: float = 0.0


@dataclass(frozen=True, slots=True)
class Applied:
    """What a venue event changed, for the owner's records: the order whose record changed
    (a fill's order only once it is done) and a newly applied fill (None: a duplicate)."""

    order: Order | None = None
    fill: Fill | None = None
    reason: str = ""  # a rejection's


@dataclass(frozen=True, slots=True)
class RiskView:
    """The risk side of an engine at one moment, read-only (a copy: later cycles do not
    change it). ``enabled`` False: stopped by the operator."""

    state: TradingState
    halt_reason: str
    enabled: bool
    limits: RiskLimits
    day_start_pnl: float
    peak_pnl: float
    last_data_ns: int  # when the feed was last heard from (0: never)
    breaker_until_ns: int  # when the volatility breaker re-arms (0: never tripped)
    denials: Mapping[DenyReason, int]

    @property
    def activity(self) -> Activity:
        """halted > stopped > reducing > trading."""
        return combined_activity(self.enabled, self.state)

    def breaker_tripped(self, now_ns: int) -> bool:
        """Whether the volatility breaker holds quoting at ``now_ns`` (monotonic)."""
        return now_ns < self.breaker_until_ns

    def stale(self, now_ns: int) -> bool:
        """Whether the feed was last heard from longer than the limit allows before ``now_ns``."""
        return (now_ns - self.last_data_ns) > self.limits.stale_after_s * 1e9


def reducing_only(quotes: list[Quote], position_lots: int) -> list[Quote]:
    """Keep quotes that work the position toward flat, sized so that all of them filling
    lands at most at flat."""
    left = abs(position_lots)
    out: list[Quote] = []
    for q in quotes:
        if q.side * position_lots >= 0 or left <= 0:
            continue
        n = min(q.lots, left)
        out.append(q._replace(lots=n))
        left -= n
    return out
