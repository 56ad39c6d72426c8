"""Notification channels speaking real wire formats: Slack incoming webhooks, signed JSON
webhooks and SMTP mail.

A channel's `send` either returns (delivered) or raises `ChannelError`, whose message has been
scrubbed of the channel's secrets and which says whether a retry could help. Retries, timeouts
and routing live in `flashmm.notify.notifier`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import smtplib
import ssl
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp

from flashmm.notify.config import ALL_SEVERITIES, EmailConfig, Severity, SlackConfig, WebhookConfig

SIGNATURE_HEADER = "X-FlashMM-Signature"
_MAX_ERROR_BODY = 200


@dataclass(frozen=True, slots=True)
class Notification:
    """One message for humans. `dedup_key` defaults to source + severity + title."""

    title: str
    text: str
    severity: Severity = Severity.INFO
    source: str = "flashmm"
    dedup_key: str | None = None
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", Severity.parse(self.severity))
        if not isinstance(self.title, str) or not self.title.strip():
            raise ValueError("notification title must be a non-empty string")
        if not isinstance(self.text, str):
            raise ValueError("notification text must be a string")
        if not isinstance(self.source, str) or not self.source.strip():
            raise ValueError("notification source must be a non-empty string")
        if self.dedup_key is not None and (
            not isinstance(self.dedup_key, str) or not self.dedup_key
        ):
            raise ValueError("notification dedup_key must be a non-empty string or None")
        if self.ts.tzinfo is None:
            raise ValueError("notification ts must be timezone-aware")

    @property
    def key(self) -> str:
        return self.dedup_key or f"{self.source}:{self.severity}:{self.title}"

    @property
    def ts_iso(self) -> str:
        return self.ts.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class ChannelError(Exception):
    """Delivery failed. The message is safe to log; `retryable` says whether to try again."""

    def __init__(self, message: str, *, retryable: bool, retry_after_s: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with each secret (longest first) replaced by ***."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text


def _url_secrets(url: str) -> tuple[str, ...]:
    """A secret URL and the parts of it an error message might quote on their own."""
    parts = urlsplit(url)
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    extra = [tail, parts.path, parts.query, parts.password or ""]
    extra += [seg for seg in parts.path.split("/") if len(seg) >= 12]  # token-like segments
    extra += [value for _, value in parse_qsl(parts.query)]
    return (url, *(p for p in extra if len(p) >= 8))


class Channel(ABC):
    """Where notifications go. Subclasses implement `_send` and list their secrets."""

    def __init__(self, name: str, severities: frozenset[Severity] = ALL_SEVERITIES) -> None:
        self.name = name
        self.severities = severities

    def accepts(self, severity: Severity) -> bool:
        return severity in self.severities

    @abstractmethod
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in logs, results or errors."""

    @abstractmethod
    async def _send(self, n: Notification, timeout_s: float) -> None: ...

    async def send(self, n: Notification, timeout_s: float) -> None:
        """Deliver `n` or raise ChannelError with a scrubbed message."""
        try:
            await self._send(n, timeout_s)
        except ChannelError as e:
            message = scrub(str(e), self.secrets())
            raise ChannelError(
                message, retryable=e.retryable, retry_after_s=e.retry_after_s
            ) from None
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise ChannelError(f"timed out after {timeout_s:g}s", retryable=True) from None
        except aiohttp.ClientError as e:
            message = scrub(f"{type(e).__name__}: {e}", self.secrets())
            raise ChannelError(message, retryable=True) from None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _status_error(status: int, body: str, headers: Any) -> ChannelError:
    snippet = " ".join(body.split())[:_MAX_ERROR_BODY]
    retryable = status in (408, 425, 429) or status >= 500
    wait = _retry_after(headers) if retryable else None
    return ChannelError(f"HTTP {status}: {snippet!r}", retryable=retryable, retry_after_s=wait)


class _HttpChannel(Channel):
    """POSTs a body with aiohttp; uses a shared session when given, a short-lived one if not."""

    def __init__(
        self,
        name: str,
        severities: frozenset[Severity],
        url: str,
        session: aiohttp.ClientSession | None,
    ) -> None:
        super().__init__(name, severities)
        self._url = url
        self._session = session

    async def _post(
        self, body: bytes, headers: dict[str, str], timeout_s: float
    ) -> tuple[int, str, Any]:
        session = self._session or aiohttp.ClientSession()
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        try:
            async with session.post(
                self._url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as resp:
                raw = await resp.content.read(4096)
                return resp.status, raw.decode("utf-8", errors="replace"), resp.headers
        finally:
            if session is not self._session:
                await session.close()


def _mrkdwn_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_EMOJI = {
    Severity.INFO: ":information_source:",
    Severity.WARNING: ":warning:",
    Severity.CRITICAL: ":rotating_light:",
}


def slack_payload(n: Notification) -> dict[str, Any]:
    """The Slack incoming-webhook body: fallback `text` plus Block Kit `blocks`."""
    label = f"[{n.severity.upper()}] {n.title}"
    details = _mrkdwn_escape(n.text) if n.text.strip() else "_(no details)_"
    context = f"*source:* {_mrkdwn_escape(n.source)} | *key:* {_mrkdwn_escape(n.key)} | {n.ts_iso}"
    return {
        "text": _clip(f"{_EMOJI[n.severity]} {_mrkdwn_escape(label)}: {details}", 3000),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": _clip(label, 150)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _clip(details, 3000)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(context, 3000)}]},
        ],
    }


class SlackChannel(_HttpChannel):
    """Slack incoming webhook: success is HTTP 200 with body "ok"."""

    def __init__(self, config: SlackConfig, session: aiohttp.ClientSession | None = None):
        url = config.webhook_url.get_secret_value()
        super().__init__(config.name, config.severities, url, session)

    def secrets(self) -> tuple[str, ...]:
        return _url_secrets(self._url)

    async def _send(self, n: Notification, timeout_s: float) -> None:
        body = json.dumps(slack_payload(n), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=utf-8"}
        status, text, resp_headers = await self._post(body, headers, timeout_s)
        if status == 200 and text.strip() == "ok":
            return
        if status == 200:
            raise ChannelError(
                f"unexpected Slack answer {text[:_MAX_ERROR_BODY]!r}", retryable=False
            )
        raise _status_error(status, text, resp_headers)


def webhook_payload(n: Notification) -> dict[str, str]:
    return {
        "title": n.title,
        "text": n.text,
        "severity": str(n.severity),
        "source": n.source,
        "dedup_key": n.key,
        "ts": n.ts_iso,
    }


def sign(body: bytes, secret: str) -> str:
    """The X-FlashMM-Signature header value for `body`: sha256=<hex HMAC-SHA256>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookChannel(_HttpChannel):
    """Generic JSON webhook; any 2xx is success."""

    def __init__(self, config: WebhookConfig, session: aiohttp.ClientSession | None = None):
        super().__init__(config.name, config.severities, config.url.get_secret_value(), session)
        secret = config.signing_secret
        self._signing_secret = secret.get_secret_value() if secret is not None else None

    def secrets(self) -> tuple[str, ...]:
        signing = (self._signing_secret,) if self._signing_secret else ()
        return (*_url_secrets(self._url), *signing)

    async def _send(self, n: Notification, timeout_s: float) -> None:
        body = json.dumps(webhook_payload(n), separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if self._signing_secret is not None:
            headers[SIGNATURE_HEADER] = sign(body, self._signing_secret)
        status, text, resp_headers = await self._post(body, headers, timeout_s)
        if not 200 <= status < 300:
            raise _status_error(status, text, resp_headers)


def build_email(n: Notification, config: EmailConfig) -> EmailMessage:
    """Plain-text mail with Subject "[SEVERITY] title" (line breaks in the title flattened)."""
    msg = EmailMessage()
    msg["Subject"] = " ".join(f"[{n.severity.upper()}] {n.title}".split())
    msg["From"] = config.sender
    msg["To"] = ", ".join(config.recipients)
    msg["Date"] = format_datetime(n.ts.astimezone(UTC))
    msg["Message-ID"] = make_msgid(domain="flashmm.local")
    msg["X-FlashMM-Dedup-Key"] = " ".join(n.key.split())
    footer = f"severity: {n.severity}\nsource: {n.source}\ndedup_key: {n.key}\nts: {n.ts_iso}\n"
    msg.set_content(f"{n.text}\n\n--\n{footer}")
    return msg


def _smtp_error(e: smtplib.SMTPException) -> ChannelError:
    if isinstance(e, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in e.recipients.values()]
        return ChannelError(
            f"all recipients refused: {codes}", retryable=any(c < 500 for c in codes)
        )
    if isinstance(e, smtplib.SMTPResponseException):
        text = e.smtp_error.decode(errors="replace") if isinstance(e.smtp_error, bytes) else ""
        retryable = 400 <= e.smtp_code < 500 and not isinstance(e, smtplib.SMTPAuthenticationError)
        return ChannelError(f"SMTP {e.smtp_code}: {text}", retryable=retryable)
    if isinstance(e, smtplib.SMTPServerDisconnected):
        return ChannelError(f"SMTP server disconnected: {e}", retryable=True)
    return ChannelError(f"{type(e).__name__}: {e}", retryable=False)


class EmailChannel(Channel):
    """SMTP via the stdlib client in a worker thread (the socket timeout bounds the thread)."""

    def __init__(self, config: EmailConfig) -> None:
        super().__init__(config.name, config.severities)
        self.config = config

    def secrets(self) -> tuple[str, ...]:
        pw = self.config.password
        return (pw.get_secret_value(),) if pw is not None else ()

    async def _send(self, n: Notification, timeout_s: float) -> None:
        msg = build_email(n, self.config)
        await asyncio.to_thread(self._deliver, msg, timeout_s)

    def _deliver(self, msg: EmailMessage, timeout_s: float) -> None:
        cfg = self.config
        try:
            with smtplib.SMTP(cfg.host, cfg.port, timeout=timeout_s) as smtp:
                smtp.ehlo()
                if cfg.starttls:
                    smtp.starttls(context=ssl.create_default_context(cafile=cfg.ca_file))
                    smtp.ehlo()
                if cfg.username and cfg.password is not None:
                    smtp.login(cfg.username, cfg.password.get_secret_value())
                refused = smtp.send_message(msg)
        except smtplib.SMTPException as e:
            raise _smtp_error(e) from None
        except ssl.SSLError as e:
            raise ChannelError(f"TLS failed: {e.reason or e}", retryable=False) from None
        except OSError as e:  # refused connection, unreachable host, socket timeout
            raise ChannelError(f"{type(e).__name__}: {e}", retryable=True) from None
        if refused:
            raise ChannelError(f"some recipients refused: {sorted(refused)}", retryable=False)
