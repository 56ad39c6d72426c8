"""Settings for the optional LLM regime advisor (Azure OpenAI), off by default.

The advisor asks a chat-completions deployment for a market regime assessment every
``interval_s`` and may only widen spreads or damp the model signal, within
``max_spread_mult`` and ``min_signal_scale``. The API key is read from the environment
variable named by ``api_key_env`` when the client is built; it is never a setting, never
read from a file, and never part of this model's repr or dump.

    llm:
      enabled: true
      azure_endpoint: https://my-resource.openai.azure.com
      deployment: gpt-4o-mini
      api_key_env: FLASHMM_AZURE_OPENAI_KEY   # export FLASHMM_AZURE_OPENAI_KEY=...
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

_DEPLOYMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
# keys that would put the credential itself into a file; refused with a pointer to api_key_env
_KEY_FIELDS = ("api_key", "key", "azure_api_key", "token")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LLMSettings(BaseModel):
    """Where the regime advisor calls, how often, how long it may wait, how many calls it may
    spend and how far its advice may move quoting."""

    # hide_input_in_errors: a key pasted into the wrong field must not reach an error text
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    enabled: bool = False
    azure_endpoint: str | None = None  # https://<resource>.openai.azure.com
    deployment: str | None = None  # the model deployment name
    api_version: str = "2024-10-21"
    api_key_env: str = "FLASHMM_AZURE_OPENAI_KEY"  # the NAME of the variable holding the key
    interval_s: float = Field(120.0, gt=0, le=86_400)
    timeout_s: float = Field(5.0, gt=0, le=60)
    max_calls_per_hour: int = Field(30, ge=1, le=3_600)
    max_calls_per_day: int = Field(720, ge=1, le=86_400)
    ttl_s: float = Field(300.0, gt=0, le=86_400)
    max_spread_mult: float = Field(2.0, ge=1.0, le=3.0)
    min_signal_scale: float = Field(0.25, ge=0.0, le=1.0)

    @model_validator(mode="before")
    @classmethod
    def _no_key_in_config(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in _KEY_FIELDS:
                if name in data:
                    # never echo the value: it may be the key itself
                    raise ValueError(
                        f"{name}: the API key must not be set in configuration; put it in the "
                        "environment variable named by api_key_env"
                    )
        return data

    @field_validator("azure_endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is None:
            return None
        parts = urlsplit(v.strip())
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an https:// URL such as https://<resource>.openai.azure.com")
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise ValueError("must use https:// (plain http is accepted only for loopback hosts)")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not carry credentials in the URL; use api_key_env")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query string or fragment")
        if parts.path.rstrip("/") not in ("", "/openai"):
            raise ValueError("must be the resource URL only (no path); the deployment is separate")
        return f"{parts.scheme}://{parts.netloc}"

    @field_validator("deployment")
    @classmethod
    def _deployment(cls, v: str | None) -> str | None:
        if v is not None and not _DEPLOYMENT.match(v):
            raise ValueError(
                "must be a deployment name: letters, digits, '.', '_' or '-', at most 64 characters"
            )
        return v

    @field_validator("api_version")
    @classmethod
    def _api_version(cls, v: str) -> str:
        if not _API_VERSION.match(v):
            raise ValueError("must look like 2024-10-21 or 2025-01-01-preview")
        return v

    @field_validator("api_key_env")
    @classmethod
    def _api_key_env(cls, v: str) -> str:
        if not _ENV_NAME.match(v):
            # never echo the value: a key pasted here by mistake must not reach a log
            raise ValueError(
                "must be the name of an environment variable (A-Z, 0-9, _), not the key itself"
            )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> LLMSettings:
        if self.timeout_s >= self.interval_s:
            raise ValueError(
                f"timeout_s: must be less than interval_s ({self.timeout_s} >= {self.interval_s})"
            )
        if self.ttl_s < self.interval_s + self.timeout_s:
            raise ValueError(
                f"ttl_s: must be at least interval_s + timeout_s "
                f"({self.interval_s + self.timeout_s:g}), or a healthy advisory lapses before "
                "its renewal arrives"
            )
        if self.enabled:
            if self.azure_endpoint is None:
                raise ValueError("azure_endpoint: is required when enabled is true")
            if self.deployment is None:
                raise ValueError("deployment: is required when enabled is true")
        return self

    @property
    def configured(self) -> bool:
        """Enabled with an endpoint and a deployment (the key is checked separately)."""
        return self.enabled and self.azure_endpoint is not None and self.deployment is not None

    def api_key(self) -> SecretStr | None:
        """The key from the environment variable named by ``api_key_env``; None when unset or
        blank. Wrapped in ``SecretStr`` so a stray repr or log shows ``**********``."""
        raw = os.environ.get(self.api_key_env, "").strip()
        return SecretStr(raw) if raw else None
