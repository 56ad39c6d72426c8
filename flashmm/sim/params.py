"""Every assumption of the simulated market, as one frozen, documented parameter set."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class MarketParams:
    """The seeded stochastic market. Prices in ticks, sizes in lots, rates per second.

    Background flow, all Poisson:

    * latent fair value ``v``: Brownian with ``fair_vol`` ticks/√s plus jumps at
      ``jump_rate`` with N(0, ``jump_sigma``) size;
    * noise limit orders per side with intensity ``limit_A``·e^(−``limit_k``·δ) at δ ticks
      behind an anchor between the mid and the fair value (``anchor_weight`` 0 = mid,
      1 = fair value). Anchoring part-way on ``v`` is what makes book imbalance informative;
    * each resting background order cancels at ``cancel_rate`` (so depth is stationary);
    * noise market orders per side at ``noise_market_rate``;
    * informed market orders at ``informed_rate``, buying when ``v`` is above the mid by more
      than ``informed_edge`` ticks and selling when below; so recent flow predicts the mid;
    * sizes are log-normal with the given mean in lots and ``size_dispersion`` log-sd.
    """

    seed: int = 7
    start_price: int = 5_000
    fair_vol: float = 0.8
    jump_rate: float = 0.01
    jump_sigma: float = 8.0
    limit_A: float = 5.0
    limit_k: float = 0.12
    anchor_weight: float = 0.35
    max_depth_ticks: int = 60
    cancel_rate: float = 2.0
    noise_market_rate: float = 3.0
    informed_rate: float = 3.0
    informed_edge: float = 1.0
    limit_size_mean: float = 200.0
    market_size_mean: float = 300.0
    size_dispersion: float = 0.6
    warmup_s: float = 30.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"MarketParams.{f.name} must be a finite number, got {v}")
        positive = (
            "start_price",
            "limit_A",
            "limit_k",
            "cancel_rate",
            "limit_size_mean",
            "market_size_mean",
            "max_depth_ticks",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"MarketParams.{name} must be positive, got {getattr(self, name)}")
        non_negative = (
            "fair_vol",
            "jump_rate",
            "jump_sigma",
            "noise_market_rate",
            "informed_rate",
            "informed_edge",
            "size_dispersion",
            "warmup_s",
        )
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"MarketParams.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.anchor_weight <= 1.0:
            raise ValueError(
                f"MarketParams.anchor_weight must be in [0, 1], got {self.anchor_weight}"
            )

    def with_(self, **changes: Any) -> MarketParams:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for reports."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class VenueParams:
    """How our own orders meet the simulated exchange.

    * ``order_latency_s``: from handing a batch to the venue until it reaches the matcher;
    * ``report_latency_s``: from an execution/ack at the matcher until we learn about it;
    * queue model: exact FIFO. Background orders are individual orders in the matcher, so
      ours join the back of their level and advance only as orders ahead fill or cancel;
    * ``post_only``: our orders that would cross on arrival are rejected, never take.
    """

    order_latency_s: float = 0.002
    report_latency_s: float = 0.001
    post_only: bool = True

    def __post_init__(self) -> None:
        for name in ("order_latency_s", "report_latency_s"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"VenueParams.{name} must be a finite number")
            if getattr(self, name) < 0:
                raise ValueError(f"VenueParams.{name} must be >= 0, got {getattr(self, name)}")


# Named market presets: only parameter values, the event cores are the same. ``thin`` is a
# young on-chain book: few resting orders (a fifth of the default's arrival intensity, spread
# over more ticks and slower to cancel), so without us the time-weighted touch spread is
# about 18 bps at the default start price (5,000 ticks, 2 bps a tick); the market orders,
# informed ones included, come as often and as large as in the default (informed_rate,
# informed_edge and market_size_mean unchanged), so a maker narrowing it meets the same
# adverse flow.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "thin": {"limit_A": 1.0, "limit_k": 0.03, "cancel_rate": 1.0},
}


def market_preset(name: str, **changes: Any) -> MarketParams:
    """``MarketParams`` of a named preset, with ``changes`` on top (seed, start price ...)."""
    try:
        values = PRESETS[name]
    except KeyError:
        known = ", ".join(sorted(PRESETS))
        raise ValueError(f"unknown market preset {name!r} (known: {known})") from None
    return MarketParams(**{**values, **changes})
