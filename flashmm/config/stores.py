"""Settings for the stores: PostgreSQL, Redis and the InfluxDB-protocol time-series server."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, field_validator


class StoreSettings(BaseModel):
    """Where the platform keeps its records. Defaults are the local development servers
    (``flashmm services up``); production points them at managed services."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    postgres_dsn: str = "postgresql://flashmm@127.0.0.1:55432/flashmm"
    redis_url: str = "redis://127.0.0.1:56379/0"
    timeseries_url: str = "http://127.0.0.1:58428"
    timeseries_org: str = "flashmm"
    timeseries_bucket: str = "flashmm"
    timeseries_token_env: str = "FLASHMM_INFLUX_TOKEN"
    journal_dir: str = ".run/journal"
    writer_memory_limit: int = Field(10_000, gt=0)
    snapshot_interval_s: float = Field(1.0, gt=0)
    migrate_on_start: bool = True

    @field_validator("postgres_dsn")
    @classmethod
    def _pg(cls, v: str) -> str:
        if not v.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, v: str) -> str:
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL")
        return v

    def timeseries_token(self) -> str:
        """The InfluxDB token, from the environment only (never from a file in the repo)."""
        return os.environ.get(self.timeseries_token_env, "")
