"""Settings for the control plane: Temporal, workers, hot-path control endpoints, schedules."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ControlSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    temporal_address: str = "127.0.0.1:7233"
    namespace: str = "default"
    # market -> base URL of its hot path's control API on this host (per-host worker)
    hotpaths: dict[str, str] = Field(default_factory=dict)
    risk_reset_cron: str = "0 0 * * *"  # UTC midnight
    ui_port: int = Field(8233, ge=1, le=65535)
