"""Settings for the model signal in the hot path."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MLSettings(BaseModel):
    """Which model the hot path runs and how hard it may try."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    model_path: str | None = None  # an exported artifact directory; none: fallback signal
    horizon_s: float = Field(0.2, gt=0)  # which head drives quoting
    budget_us: float = Field(1000.0, gt=0)  # an inference over this counts as slow
    slow_trip: int = Field(3, ge=1)  # this many slow inferences in a row open the breaker
    cooldown_s: float = Field(10.0, gt=0)
    threads: int = Field(1, ge=1)
