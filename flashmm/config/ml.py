"""Settings for the model signal in the hot path."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class MLSettings(BaseModel):
    """Which model the hot path runs and how hard it may try."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    model_path: str | None = None  # an exported artifact directory; none: fallback signal
    horizon_s: float = Field(0.2, gt=0)  # which head drives quoting
    budget_us: float = Field(1000.0, gt=0)  # inline: an inference over this counts as slow
    slow_trip: int = Field(3, ge=1)  # this many slow inferences in a row open the breaker
    cooldown_s: float = Field(10.0, gt=0)
    threads: int = Field(1, ge=1)
    # live hot path: the model runs on its own thread, off the quote cycle, which quotes on
    # the latest result if it is fresh, else on the fallback (false: inline, waits for it)
    background: bool = True
    # a result whose features are older than this at the cycle is not used (background)
    max_signal_age_ms: float = Field(100.0, gt=0, le=10_000)
    # features are sampled this long before each scheduled cycle so the model is done by
    # then; an inference slower than this counts as slow (background)
    signal_lead_ms: float = Field(20.0, gt=0, le=1_000)

    @model_validator(mode="after")
    def _lead_inside_age(self) -> MLSettings:
        if self.signal_lead_ms >= self.max_signal_age_ms:
            raise ValueError(
                f"signal_lead_ms ({self.signal_lead_ms:g}) must be below max_signal_age_ms "
                f"({self.max_signal_age_ms:g}): every result would be stale at its cycle"
            )
        return self
