"""Settings for backups: where they go, how many are kept, when the nightly one runs.

Meant as the ``backup`` section of ``Settings`` (``FLASHMM_BACKUP__DIR=...``). S3
credentials are never settings: boto3 finds them itself (environment, profile, role).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class BackupSettings(BaseModel):
    """The backup store, retention and schedule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: Literal["local", "s3"] = "local"
    dir: str = ".run/backups"  # the local store's root directory
    keep: int = Field(7, ge=1)  # complete backups kept (the newest)
    max_age_days: float | None = Field(None, gt=0)  # also delete complete ones older than this
    partial_grace_hours: float = Field(24.0, gt=0)  # an unfinished backup older than this goes
    cron: str = "30 2 * * *"  # nightly, UTC
    s3_bucket: str = ""
    s3_prefix: str = "flashmm/backups"
    s3_endpoint_url: str | None = None  # an S3-compatible service (MinIO, R2, ...)
    s3_region: str | None = None
    pg_bin_dir: str | None = None  # where pg_dump/pg_restore live; default: newest installed
    heartbeat_s: float = Field(5.0, gt=0)
    redis_batch: int = Field(500, ge=1, le=100_000)

    @model_validator(mode="after")
    def _s3_needs_bucket(self) -> BackupSettings:
        if self.store == "s3" and not self.s3_bucket:
            raise ValueError("s3_bucket: must be set when store is s3")
        return self


def backup_settings(settings: Any) -> BackupSettings:
    """The ``backup`` section of the settings object, or the defaults where it has none."""
    section = getattr(settings, "backup", None)
    return section if isinstance(section, BackupSettings) else BackupSettings()
