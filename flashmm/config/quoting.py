"""Quoting parameters: one frozen, validated set per market."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from enum import Enum
from typing import Any


class QuoteModel(Enum):
    """``fixed``: mid ∓ ``min_half_spread_ticks`` rounded outward, never inside the touch, one
    constant size; no inventory, signal or volatility terms (a baseline for comparisons)."""

    AS = "as"
    GLFT = "glft"
    FIXED = "fixed"


class Mode(Enum):
    """aggressive: tighter and larger; conservative: wider and smaller; adaptive: by regime."""

    AGGRESSIVE = "aggressive"
    CONSERVATIVE = "conservative"
    ADAPTIVE = "adaptive"


class QuotingPolicy(Enum):
    """On top of the quote model: ``none``, or ``touch`` (per side, improve the touch, join
    it or stay behind it: ``hotpath/quoting/touch_policy.py``, ``docs/spread.md``). Read
    when the engine starts (not a run-time change)."""

    NONE = "none"
    TOUCH = "touch"


@dataclass(frozen=True, slots=True)
class QuoteParams:
    """How quotes are built. Ticks for prices, USDC for notionals, seconds for time."""

    model: QuoteModel = QuoteModel.GLFT
    mode: Mode = Mode.ADAPTIVE
    gamma: float = 0.1
    horizon_s: float = 1.0
    prior_sigma: float = 1.0
    prior_A: float = 1.0
    prior_k: float = 0.5
    levels: int = 2
    level_spacing_ticks: int = 1
    order_notional: float = 100.0
    order_lots: int = 0  # > 0: a constant order size in lots instead of order_notional
    size_decay: float = 1.0
    min_half_spread_ticks: float = 0.5
    max_half_spread_ticks: float = 50.0
    vol_ref: float = 1.5
    vol_widen: float = 0.5
    signal_skew_ticks: float = 2.0
    signal_min_confidence: float = 0.5
    inventory_skew_mult: float = 1.0
    requote_min_interval_s: float = 0.02
    keep_size_tolerance: float = 0.25
    policy: QuotingPolicy = QuotingPolicy.NONE

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"quoting.{f.name} must be a finite number, got {v}")
        positive = (
            "gamma",
            "horizon_s",
            "prior_sigma",
            "prior_A",
            "prior_k",
            "levels",
            "level_spacing_ticks",
            "order_notional",
            "size_decay",
            "vol_ref",
            "max_half_spread_ticks",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"quoting.{name} must be positive, got {getattr(self, name)}")
        non_negative = (
            "min_half_spread_ticks",
            "order_lots",
            "vol_widen",
            "signal_skew_ticks",
            "inventory_skew_mult",
            "requote_min_interval_s",
            "keep_size_tolerance",
        )
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"quoting.{name} must be >= 0, got {getattr(self, name)}")
        if self.min_half_spread_ticks > self.max_half_spread_ticks:
            raise ValueError("quoting.min_half_spread_ticks must not exceed max_half_spread_ticks")
        if not 0.0 <= self.signal_min_confidence <= 1.0:
            raise ValueError("quoting.signal_min_confidence must be in [0, 1]")
        if self.levels > 10:
            raise ValueError(f"quoting.levels must be at most 10, got {self.levels}")

    def with_(self, **changes: Any) -> QuoteParams:
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return {
            f.name: (v.value if isinstance(v := getattr(self, f.name), Enum) else v)
            for f in fields(self)
        }


# mode → (gamma multiplier, spread multiplier, size multiplier)
MODE_SCALES: dict[Mode, tuple[float, float, float]] = {
    Mode.AGGRESSIVE: (0.5, 0.75, 1.5),
    Mode.CONSERVATIVE: (2.0, 1.5, 0.5),
}
