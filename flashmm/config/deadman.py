"""Settings of the dead-man's switch: hot-path heartbeats and the per-host watcher.

Each hot path writes a heartbeat to Redis (``stores.redis_url``) carrying the time of its
last quote cycle; the per-host worker's watcher declares a market's hot path dead when that
last cycle is older than ``timeout_s`` (a killed process, or one whose loop is stuck), then
halts the market durably and cancels its orders on the venue. The hot path's ``/healthz``
(on its metrics port) fails on the same rule, and a hot path that notices it went longer
than ``timeout_s`` without a cycle halts itself. The switch uses the stores: it is off when
``stores.enabled`` is false.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DeadmanSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    # how often a hot path writes its heartbeat (the key's TTL is timeout_s)
    heartbeat_interval_s: float = Field(0.25, gt=0, le=10)
    # a hot path whose last cycle is older than this is dead; keep it above the longest
    # legitimate cycle (a slow venue broadcast blocks one)
    timeout_s: float = Field(1.5, gt=0, le=300)
    # how often the watcher reads the heartbeats
    poll_interval_s: float = Field(0.1, gt=0, le=10)

    @model_validator(mode="after")
    def _beats_within_timeout(self) -> DeadmanSettings:
        if self.timeout_s < 2 * self.heartbeat_interval_s:
            raise ValueError("timeout_s must be at least twice heartbeat_interval_s")
        if self.timeout_s <= self.poll_interval_s:
            raise ValueError("timeout_s must be longer than poll_interval_s")
        return self
