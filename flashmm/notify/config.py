"""Typed, frozen configuration for the notifier, its channels and the social publisher.

Secrets (webhook URLs, HMAC secrets, SMTP passwords, API tokens) are held as
``pydantic.SecretStr`` so that ``repr``/``str`` of any config object never shows them. Plain
strings are accepted and wrapped, so a config built from YAML or the environment works too.
Validation errors never quote a secret value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import urlsplit

from pydantic import SecretStr


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @classmethod
    def parse(cls, value: object) -> Severity:
        """A Severity from a Severity or its name in any case; ValueError otherwise."""
        if isinstance(value, Severity):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        raise ValueError(f"severity must be one of info, warning, critical; got {value!r}")


ALL_SEVERITIES: frozenset[Severity] = frozenset(Severity)
WARNING_AND_UP: frozenset[Severity] = frozenset({Severity.WARNING, Severity.CRITICAL})


def _secret(value: object, what: str) -> SecretStr:
    if isinstance(value, SecretStr):
        secret = value
    elif isinstance(value, str):
        secret = SecretStr(value)
    else:
        raise TypeError(f"{what} must be a string or SecretStr, got {type(value).__name__}")
    if not secret.get_secret_value():
        raise ValueError(f"{what} must not be empty")
    return secret


def _optional_secret(value: object, what: str) -> SecretStr | None:
    return None if value is None else _secret(value, what)


def _http_url(secret: SecretStr, what: str) -> None:
    # the URL is a secret: the error names the field, never the value
    parts = urlsplit(secret.get_secret_value())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be an http(s) URL with a host")


def _severities(value: Iterable[object], what: str) -> frozenset[Severity]:
    if isinstance(value, str):
        raise TypeError(f"{what}.severities must be a collection of severities, not a string")
    out = frozenset(Severity.parse(v) for v in value)
    if not out:
        raise ValueError(f"{what}.severities must not be empty")
    return out


def _name(value: object, what: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what}.name must be a non-empty string")


def _finite(value: float, what: str, *, positive: bool = False) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{what} must be {'> 0' if positive else '>= 0'}, got {value!r}")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with exponential backoff; each attempt has its own timeout."""

    max_attempts: int = 3
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    attempt_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ValueError(f"retry.max_attempts must be an integer, got {self.max_attempts!r}")
        if not 1 <= self.max_attempts <= 10:
            raise ValueError(f"retry.max_attempts must be in 1..10, got {self.max_attempts}")
        _finite(self.base_delay_s, "retry.base_delay_s")
        _finite(self.max_delay_s, "retry.max_delay_s")
        _finite(self.attempt_timeout_s, "retry.attempt_timeout_s", positive=True)
        if self.max_delay_s < self.base_delay_s:
            raise ValueError("retry.max_delay_s must be >= retry.base_delay_s")

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return float(min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)))


@dataclass(frozen=True, slots=True)
class SlackConfig:
    """A Slack incoming webhook. The whole URL is the credential."""

    webhook_url: SecretStr
    name: str = "slack"
    severities: frozenset[Severity] = ALL_SEVERITIES

    def __post_init__(self) -> None:
        _name(self.name, "slack")
        object.__setattr__(self, "webhook_url", _secret(self.webhook_url, "slack.webhook_url"))
        _http_url(self.webhook_url, "slack.webhook_url")
        object.__setattr__(self, "severities", _severities(self.severities, self.name))


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """A generic JSON webhook, HMAC-SHA256 signed when `signing_secret` is set."""

    url: SecretStr
    signing_secret: SecretStr | None = None
    name: str = "webhook"
    severities: frozenset[Severity] = ALL_SEVERITIES

    def __post_init__(self) -> None:
        _name(self.name, "webhook")
        object.__setattr__(self, "url", _secret(self.url, "webhook.url"))
        _http_url(self.url, "webhook.url")
        signing = _optional_secret(self.signing_secret, "webhook.signing_secret")
        object.__setattr__(self, "signing_secret", signing)
        object.__setattr__(self, "severities", _severities(self.severities, self.name))


@dataclass(frozen=True, slots=True)
class EmailConfig:
    """SMTP delivery of plain-text mail; STARTTLS and login are optional."""

    host: str
    sender: str
    recipients: tuple[str, ...]
    port: int = 587
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = True
    ca_file: str | None = None
    name: str = "email"
    severities: frozenset[Severity] = WARNING_AND_UP

    def __post_init__(self) -> None:
        _name(self.name, "email")
        if not isinstance(self.host, str) or not self.host.strip():
            raise ValueError("email.host must be a non-empty string")
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise ValueError(f"email.port must be an integer, got {self.port!r}")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"email.port must be in 1..65535, got {self.port}")
        recipients = (self.recipients,) if isinstance(self.recipients, str) else self.recipients
        object.__setattr__(self, "recipients", tuple(recipients))
        if not self.recipients:
            raise ValueError("email.recipients must not be empty")
        for addr in (self.sender, *self.recipients):
            if not isinstance(addr, str) or "@" not in addr or any(c in addr for c in "\r\n,"):
                raise ValueError(f"email address {addr!r} is not a single valid address")
        object.__setattr__(self, "password", _optional_secret(self.password, "email.password"))
        if self.password is not None and not self.username:
            raise ValueError("email.password is set but email.username is not")
        object.__setattr__(self, "severities", _severities(self.severities, self.name))


ChannelConfig = SlackConfig | WebhookConfig | EmailConfig


@dataclass(frozen=True, slots=True)
class NotifierConfig:
    """Channels (each with the severities it receives), retry policy and de-dup window."""

    channels: tuple[ChannelConfig, ...] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    dedup_window_s: float = 300.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))
        names = [c.name for c in self.channels]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"notifier channel names must be unique; repeated: {dupes}")
        _finite(self.dedup_window_s, "notifier.dedup_window_s")


@dataclass(frozen=True, slots=True)
class SocialConfig:
    """The optional X (Twitter) publisher for performance summaries. Off by default."""

    enabled: bool = False
    bearer_token: SecretStr | None = None
    base_url: str = "https://api.x.com"
    min_interval_s: float = 86_400.0
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        token = _optional_secret(self.bearer_token, "social.bearer_token")
        object.__setattr__(self, "bearer_token", token)
        if self.enabled and self.bearer_token is None:
            raise ValueError("social.enabled requires social.bearer_token")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"social.base_url must be an http(s) URL, got {self.base_url!r}")
        _finite(self.min_interval_s, "social.min_interval_s")
        _finite(self.timeout_s, "social.timeout_s", positive=True)
