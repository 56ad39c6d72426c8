"""Pre-trade risk: hard limits with machine-readable deny reasons, and the trading state.

States (``TradingState``: the domain's ``RiskState``, another axis than a market's
STOPPED/TRADING/HALTED, see ``flashmm.domain.market_state``): ACTIVE (anything the limits
allow) → REDUCING (only orders that shrink the position) → HALTED (cancels only). A
drawdown past ``max_drawdown`` moves to REDUCING, a daily loss past ``daily_loss_limit`` or
the kill switch to HALTED. Only an explicit
``resume`` leaves HALTED; the daily reset re-arms the loss counters.

The position check is worst case: every live order on a side (in flight, resting, or with
a cancel in flight) is assumed to fill, so the limit holds whatever the venue does first.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Any

from flashmm.config.risk import RiskLimits
from flashmm.domain.market_state import RiskState

__all__ = ["DenyReason", "Exposure", "RiskEngine", "RiskLimits", "TradingState"]


# the risk engine's state is the domain's ``RiskState`` (``flashmm.domain.market_state``,
# which names how it relates to a market's state); ``TradingState`` is its name here
TradingState = RiskState


class DenyReason(Enum):
    HALTED = "halted"
    REDUCE_ONLY = "reduce_only"
    STALE_MARKET_DATA = "stale_market_data"
    VOLATILITY_BREAKER = "volatility_breaker"
    ORDER_NOTIONAL = "order_notional"
    POSITION_LIMIT = "position_limit"
    OPEN_NOTIONAL = "open_notional"
    ORDER_RATE = "order_rate"


@dataclass(frozen=True, slots=True)
class Exposure:
    """What the order manager holds right now, in lots and USDC."""

    position_lots: int
    live_buy_lots: int
    live_sell_lots: int
    open_notional: float


class RiskEngine:
    """Checks each order against the limits; tracks PnL peaks and the trading state."""

    __slots__ = (
        "_actions",
        "_breaker_until_ns",
        "_day_start_pnl",
        "_peak_pnl",
        "denials",
        "halt_reason",
        "last_data_ns",
        "limits",
        "lot_value",
        "state",
    )

    def __init__(self, limits: RiskLimits, lot_value_per_tick: float) -> None:
        self.limits = limits
        self.lot_value = lot_value_per_tick  # USDC per lot per tick of price
        self.state = TradingState.ACTIVE
        self.halt_reason = ""
        self.denials: dict[DenyReason, int] = dict.fromkeys(DenyReason, 0)
        self._actions: deque[int] = deque()
        self._breaker_until_ns = 0
        self._peak_pnl = 0.0
        self._day_start_pnl = 0.0
        self.last_data_ns = 0

    # --- state -------------------------------------------------------------------------
    def halt(self, reason: str) -> None:
        """Kill switch: cancels only until ``resume``."""
        self.state = TradingState.HALTED
        self.halt_reason = reason

    def reduce_only(self, reason: str) -> None:
        if self.state is TradingState.ACTIVE:
            self.state = TradingState.REDUCING
            self.halt_reason = reason

    def resume(self) -> None:
        self.state = TradingState.ACTIVE
        self.halt_reason = ""

    def daily_reset(self, pnl: float) -> None:
        """Start a new risk day: losses count from here; drawdown from the current PnL."""
        self._day_start_pnl = pnl
        self._peak_pnl = pnl

    def on_pnl(self, pnl: float) -> None:
        """Update peaks and move to REDUCING/HALTED when a loss limit is crossed."""
        if pnl > self._peak_pnl:
            self._peak_pnl = pnl
        if self._day_start_pnl - pnl >= self.limits.daily_loss_limit:
            if self.state is not TradingState.HALTED:
                self.halt("daily_loss_limit")
        elif self._peak_pnl - pnl >= self.limits.max_drawdown:
            self.reduce_only("max_drawdown")

    def on_volatility(self, sigma: float, now_ns: int) -> None:
        if sigma >= self.limits.vol_breaker_sigma:
            self._breaker_until_ns = now_ns + int(self.limits.vol_breaker_cooldown_s * 1e9)

    def breaker_tripped(self, now_ns: int) -> bool:
        return now_ns < self._breaker_until_ns

    def stale(self, now_ns: int) -> bool:
        return (now_ns - self.last_data_ns) > self.limits.stale_after_s * 1e9

    # --- checks ------------------------------------------------------------------------
    def gate(self, now_ns: int) -> DenyReason | None:
        """Cycle-level gate: a reason here means no quotes at all (live ones get cancelled)."""
        if self.state is TradingState.HALTED:
            reason = DenyReason.HALTED
        elif self.stale(now_ns):
            reason = DenyReason.STALE_MARKET_DATA
        elif self.breaker_tripped(now_ns):
            reason = DenyReason.VOLATILITY_BREAKER
        else:
            return None
        self.denials[reason] += 1
        return reason

    def check_place(
        self, side: int, price: int, lots: int, exp: Exposure, now_ns: int
    ) -> DenyReason | None:
        """None if the order may go out; otherwise why not (and the denial is counted)."""
        reason = self._check(side, price, lots, exp, now_ns)
        if reason is not None:
            self.denials[reason] += 1
        return reason

    def _check(
        self, side: int, price: int, lots: int, exp: Exposure, now_ns: int
    ) -> DenyReason | None:
        lim = self.limits
        if self.state is TradingState.HALTED:
            return DenyReason.HALTED
        pos = exp.position_lots
        worst = pos + exp.live_buy_lots + lots if side > 0 else pos - exp.live_sell_lots - lots
        # reducing: on the side against the position, never past flat even if all fill
        reducing = pos != 0 and (side > 0) != (pos > 0) and (worst >= 0) == (pos > 0)
        if self.state is TradingState.REDUCING and not reducing:
            return DenyReason.REDUCE_ONLY
        if self.stale(now_ns):
            return DenyReason.STALE_MARKET_DATA
        if self.breaker_tripped(now_ns):
            return DenyReason.VOLATILITY_BREAKER
        notional = price * lots * self.lot_value
        if notional > lim.max_order_notional:
            return DenyReason.ORDER_NOTIONAL
        # an order that can only shrink the position is allowed even over the limit (the
        # price may have moved the position's value past it): it is the way back under
        if not reducing and abs(worst) * price * self.lot_value > lim.max_position_notional:
            return DenyReason.POSITION_LIMIT
        if exp.open_notional + notional > lim.max_open_notional:
            return DenyReason.OPEN_NOTIONAL
        if not self._take_action(now_ns):
            return DenyReason.ORDER_RATE
        return None

    def _take_action(self, now_ns: int) -> bool:
        """Sliding one-second window of venue actions (places and cancels)."""
        acts = self._actions
        cutoff = now_ns - 1_000_000_000
        while acts and acts[0] <= cutoff:
            acts.popleft()
        if len(acts) >= self.limits.max_actions_per_s:
            return False
        acts.append(now_ns)
        return True

    def count_cancel(self, now_ns: int) -> None:
        """Cancels are never denied, but they use the same rate budget."""
        self._actions.append(now_ns)

    @property
    def day_start_pnl(self) -> float:
        return self._day_start_pnl

    @property
    def peak_pnl(self) -> float:
        """The highest PnL since the day began (the drawdown's reference)."""
        return self._peak_pnl

    @property
    def breaker_until_ns(self) -> int:
        """When the volatility breaker re-arms (0: never tripped)."""
        return self._breaker_until_ns

    def snapshot(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "halt_reason": self.halt_reason,
            "denials": {r.value: n for r, n in self.denials.items() if n},
            "peak_pnl": self._peak_pnl,
            "day_start_pnl": self._day_start_pnl,
        }
