"""Settings for the stores: PostgreSQL (with its two roles), Redis and the InfluxDB-protocol
time-series server."""

from __future__ import annotations

import os
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_ROLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


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
    # who may do what in PostgreSQL: migrations run as (or SET ROLE to) the owner role; the
    # services connect as the application role, which may only INSERT and SELECT the audit log
    postgres_migrate_dsn: str | None = None  # `db migrate`'s DSN; unset: postgres_dsn
    pg_owner_role: str = "flashmm_owner"
    pg_app_role: str = "flashmm_app"
    pg_owner_password_env: str = "FLASHMM_PG_OWNER_PASSWORD"
    pg_app_password_env: str = "FLASHMM_PG_APP_PASSWORD"
    audit_anchor_interval_s: float = Field(30.0, gt=0, le=60)

    @field_validator("postgres_dsn", "postgres_migrate_dsn")
    @classmethod
    def _pg(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return v

    @field_validator("pg_owner_role", "pg_app_role")
    @classmethod
    def _role(cls, v: str) -> str:
        if not _ROLE.fullmatch(v):
            raise ValueError("must be a lower-case PostgreSQL identifier (a-z, 0-9, _)")
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, v: str) -> str:
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL")
        return v

    @model_validator(mode="after")
    def _distinct_roles(self) -> StoreSettings:
        if self.pg_owner_role == self.pg_app_role:
            raise ValueError("pg_owner_role and pg_app_role must be different roles")
        return self

    def migrate_dsn(self) -> str:
        """The DSN migrations run with (the owner, or an admin that may SET ROLE to it)."""
        return self.postgres_migrate_dsn or self.postgres_dsn

    def pg_owner_password(self) -> str:
        """The owner role's password, from the environment only ("" leaves it NOLOGIN)."""
        return os.environ.get(self.pg_owner_password_env, "")

    def pg_app_password(self) -> str:
        """The application role's password, from the environment only."""
        return os.environ.get(self.pg_app_password_env, "")

    def timeseries_token(self) -> str:
        """The InfluxDB token, from the environment only (never from a file in the repo)."""
        return os.environ.get(self.timeseries_token_env, "")
