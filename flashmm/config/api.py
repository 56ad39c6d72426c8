"""Settings for the operator API: listen address, token lifetimes, limits and rate limits.

Secrets are not settings: the JWT signing secret comes from the environment variable named
by ``jwt_secret_env`` (at least 32 bytes), never from a file in the repository.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field


class RateLimit(BaseModel):
    """A token bucket: ``rate`` requests per second on average, bursts up to ``burst``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate: float = Field(gt=0)
    burst: int = Field(gt=0)


class RateLimits(BaseModel):
    """Token buckets (docs/api.md, "Limits"). ``read``, ``write`` and ``estop`` are per
    identity (user or API key) and class, so a token's reads never spend its emergency stops.
    The others are keyed by client address, never by user name alone: an attacker elsewhere
    cannot lock a user out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    read: RateLimit = RateLimit(rate=100.0, burst=200)
    write: RateLimit = RateLimit(rate=5.0, burst=20)
    # the emergency stop is idempotent and must not be starved by other writes
    estop: RateLimit = RateLimit(rate=2.0, burst=10)
    # login attempts per client address (each costs a password hash): spraying stays slow
    login: RateLimit = RateLimit(rate=0.2, burst=10)
    # failed logins per (user name, client address): guessing one password stays slow
    login_failures: RateLimit = RateLimit(rate=0.1, burst=5)
    # POST /v1/auth/refresh per client address, apart from logins
    refresh: RateLimit = RateLimit(rate=1.0, burst=30)
    # failed API-key or token checks per client address; once spent, a request with a
    # credential is refused (429) before any lookup
    auth_failures: RateLimit = RateLimit(rate=1.0, burst=20)


class Admission(BaseModel):
    """Read admission control: at most ``max_reads`` GET requests under ``/v1/`` run at once
    and up to ``queue`` more wait, each at most ``queue_timeout_s``; the rest get 503 with
    ``Retry-After`` at once. Writes and the emergency stop never wait here, and with reads
    below the database pool size (10) they always find a connection. While a request to one
    of ``priority_paths`` is in progress no new read starts, for at most ``pause_s``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_reads: int = Field(6, gt=0)
    queue: int = Field(32, ge=0)
    queue_timeout_s: float = Field(0.5, ge=0)
    retry_after_s: int = Field(1, gt=0)
    priority_paths: list[str] = Field(default_factory=lambda: ["/v1/emergency-stop"])
    pause_s: float = Field(1.0, ge=0)


class ApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    jwt_secret_env: str = "FLASHMM_API_JWT_SECRET"
    # during a rotation: the previous secret, still accepted (never used to sign)
    jwt_previous_secret_env: str = "FLASHMM_API_JWT_SECRET_PREVIOUS"
    jwt_issuer: str = "flashmm"
    access_ttl_s: int = Field(900, gt=0, le=86_400)
    refresh_ttl_s: int = Field(7 * 86_400, gt=0)
    cors_origins: list[str] = Field(default_factory=list)  # empty: CORS off
    docs: bool = False  # Swagger UI at /docs (the schema is always at /openapi.json)
    max_body_bytes: int = Field(64 * 1024, gt=0)
    request_timeout_s: float = Field(10.0, gt=0)
    temporal_timeout_s: float = Field(3.0, gt=0)
    hotpath_timeout_s: float = Field(1.0, gt=0)
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    admission: Admission = Field(default_factory=Admission)
    ws_queue: int = Field(256, gt=0)  # events buffered per WebSocket client before it is dropped
    ws_send_timeout_s: float = Field(2.0, gt=0)
    ws_auth_timeout_s: float = Field(5.0, gt=0)
    auth_cache_s: float = Field(5.0, ge=0)  # users/keys looked up at most this often
    # emergency stops recorded while Temporal was unreachable, when PostgreSQL is down too
    spool_dir: str = ".run/api"

    def jwt_secret(self) -> str:
        secret = os.environ.get(self.jwt_secret_env, "")
        if len(secret.encode()) < 32:
            raise ValueError(f"{self.jwt_secret_env} must hold a secret of at least 32 bytes")
        return secret

    def jwt_previous_secret(self) -> str:
        """The secret before the last rotation ("" when none): its tokens stay valid until
        they expire (at most ``refresh_ttl_s``), then it can be removed."""
        secret = os.environ.get(self.jwt_previous_secret_env, "")
        if secret and len(secret.encode()) < 32:
            raise ValueError(
                f"{self.jwt_previous_secret_env} must hold a secret of at least 32 bytes"
            )
        return secret
