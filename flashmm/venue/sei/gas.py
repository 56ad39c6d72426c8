"""Gas for dex transactions: an estimate learned from recent usage with headroom, a price by
urgency (cancels and emergency stops pay more), and a hard fee cap.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum


class Urgency(Enum):
    NORMAL = "normal"
    CANCEL = "cancel"  # only cancels: getting out of the market matters more
    EMERGENCY = "emergency"


@dataclass(frozen=True, slots=True)
class GasConfig:
    gas_price: Decimal = Decimal("0.02")  # usei per gas
    headroom: float = 1.2
    prior_base: int = 100_000
    prior_per_item: int = 30_000
    urgency_multiplier: tuple[tuple[str, float], ...] = (
        ("normal", 1.0),
        ("cancel", 1.5),
        ("emergency", 3.0),
    )
    max_fee_usei: int = 200_000  # never pay more than this per transaction
    window: int = 64

    def multiplier(self, u: Urgency) -> float:
        return dict(self.urgency_multiplier).get(u.value, 1.0)


class GasEstimator:
    """Fits gas_used ≈ base + per_item × (orders + cancels) over a window of recent txs."""

    def __init__(self, cfg: GasConfig | None = None) -> None:
        self.cfg = cfg or GasConfig()
        self.base = float(self.cfg.prior_base)
        self.per_item = float(self.cfg.prior_per_item)
        self._samples: deque[tuple[int, int]] = deque(maxlen=self.cfg.window)
        self.bumps = 0

    def observe(self, items: int, gas_used: int) -> None:
        self._samples.append((items, gas_used))
        xs = [x for x, _ in self._samples]
        if len(set(xs)) < 2:
            # one shape only: keep the slope, move the intercept to fit it
            self.base = max(self.base, gas_used - self.per_item * items)
            return
        n = len(self._samples)
        mx = sum(xs) / n
        my = sum(y for _, y in self._samples) / n
        sxx = sum((x - mx) ** 2 for x in xs)
        sxy = sum((x - mx) * (y - my) for x, y in self._samples)
        slope = sxy / sxx
        if slope > 0:
            self.per_item = slope
            self.base = max(0.0, my - slope * mx)

    def out_of_gas(self) -> None:
        """A tx ran out of gas: the estimate was too low, raise it."""
        self.bumps += 1
        self.base *= 1.5
        self.per_item *= 1.25

    def gas_limit(self, orders: int, cancels: int) -> int:
        return math.ceil((self.base + self.per_item * (orders + cancels)) * self.cfg.headroom)

    def fee(self, gas_limit: int, urgency: Urgency) -> int:
        """Fee in usei for a gas limit at this urgency, capped at ``max_fee_usei``."""
        price = self.cfg.gas_price * Decimal(str(self.cfg.multiplier(urgency)))
        fee = int((price * gas_limit).to_integral_value(rounding="ROUND_CEILING"))
        return min(fee, self.cfg.max_fee_usei)
