"""Hard risk limits for one market (used by the hot path's risk engine)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Hard limits for one market, in quote currency (USDC) and seconds."""

    max_position_notional: float = 2000.0
    max_order_notional: float = 500.0
    max_open_notional: float = 3000.0
    max_actions_per_s: int = 50
    daily_loss_limit: float = 200.0
    max_drawdown: float = 150.0
    stale_after_s: float = 1.0
    vol_breaker_sigma: float = 6.0  # ticks/√s
    vol_breaker_cooldown_s: float = 10.0

    def __post_init__(self) -> None:
        for f in fields(self):
            if not math.isfinite(getattr(self, f.name)):
                raise ValueError(f"risk.{f.name} must be a finite number")
            if getattr(self, f.name) <= 0:
                raise ValueError(f"risk.{f.name} must be positive, got {getattr(self, f.name)}")

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
