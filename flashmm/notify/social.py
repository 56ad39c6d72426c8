"""Optional publisher of periodic performance summaries to X (API v2 `POST /2/tweets`).

Off unless `SocialConfig.enabled`. Only whitelisted percentage/count figures can be formatted,
and every text passes a deny filter before it can leave: anything that looks like a position,
balance, amount, address, key, mnemonic, token, URL or registered secret is refused. At most
one POST goes out per `min_interval_s`, whatever its outcome; a post is never retried, so a
tweet is never published twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import aiohttp

from flashmm import logs
from flashmm.notify.channels import scrub
from flashmm.notify.config import SocialConfig

log = logging.getLogger(__name__)

MAX_TWEET_WEIGHT = 280
_MAX_SCAN = 2_000
SUMMARY_FIGURES = ("pnl_pct", "spread_improvement_pct", "uptime_pct", "fills")

# (reason, pattern) pairs; any match refuses the text
_DENY: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("sei address", re.compile(r"\bsei[a-z]*1[02-9ac-hj-np-z]{6,}", re.IGNORECASE)),
    ("evm address", re.compile(r"\b0x[0-9a-f]{8,}", re.IGNORECASE)),
    ("hex key material", re.compile(r"\b[0-9a-f]{32,}\b", re.IGNORECASE)),
    ("pem key", re.compile(r"-----BEGIN")),
    ("token-like string", re.compile(r"(?=[A-Za-z0-9_\-+/=.]*\d)[A-Za-z0-9_\-+/=.]{24,}")),
    ("mnemonic-like word run", re.compile(r"\b(?:[a-z]{3,8}\s+){11,}[a-z]{3,8}\b")),
    ("url", re.compile(r"\bhttps?://|\bwww\.", re.IGNORECASE)),
    (
        "currency amount",
        re.compile(
            r"[$€£]\s?\d|\d[\d,.]*\s?(?:[ku]?sei|u?usdc|usdt|usd|atom|btc|eth)\b", re.IGNORECASE
        ),
    ),
    (
        "sensitive word",
        re.compile(
            r"\b(?:positions?|balances?|inventory|holdings?|exposure|notional|wallets?|"
            r"address(?:es)?|private|keys?|secrets?|mnemonics?|seed|passwords?|passphrase|"
            r"tokens?|bearer|credentials?|api[\s_-]?key|priv(?:ate)?key)\b",
            re.IGNORECASE,
        ),
    ),
)


def deny_reasons(text: str, extra_secrets: Iterable[str] = ()) -> tuple[str, ...]:
    """Why `text` must not be published; empty when it may be."""
    if len(text) > _MAX_SCAN:  # keeps the scan linear-ish; such text is far too long anyway
        return (f"longer than {_MAX_SCAN} characters, not scanned",)
    reasons = [reason for reason, pattern in _DENY if pattern.search(text)]
    secrets = (*extra_secrets, *logs.known_secrets())
    if any(s and s in text for s in secrets):
        reasons.append("registered secret")
    return tuple(reasons)


def weighted_length(text: str) -> int:
    """Length as X counts it: most Latin/punctuation code points weigh 1, others (CJK,
    emoji) 2."""
    light = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
    return sum(1 if any(lo <= ord(ch) <= hi for lo, hi in light) else 2 for ch in text)


def _number(figures: Mapping[str, object], key: str) -> float:
    value = figures[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"figure {key!r} must be a finite number, got {value!r}")
    return float(value)


def format_summary(figures: Mapping[str, object], period: str = "Daily") -> str:
    """A short public summary from whitelisted figures: pnl_pct, spread_improvement_pct,
    uptime_pct (0-100) and fills (count). Other keys are refused, not dropped, so a caller
    passing positions or balances finds out."""
    unknown = sorted(set(figures) - set(SUMMARY_FIGURES))
    if unknown:
        raise ValueError(f"not publishable figures: {unknown}; allowed: {list(SUMMARY_FIGURES)}")
    if not figures:
        raise ValueError("no figures to publish")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9 \-]{0,23}", period):
        raise ValueError(f"period must be a short plain label, got {period!r}")
    parts = [f"FlashMM {period.lower()} summary"]
    if "pnl_pct" in figures:
        parts.append(f"PnL {_number(figures, 'pnl_pct'):+.2f}%")
    if "spread_improvement_pct" in figures:
        value = _number(figures, "spread_improvement_pct")
        parts.append(f"spread improvement {value:+.1f}% vs market")
    if "uptime_pct" in figures:
        uptime = _number(figures, "uptime_pct")
        if not 0 <= uptime <= 100:
            raise ValueError(f"uptime_pct must be within 0..100, got {uptime}")
        parts.append(f"uptime {uptime:.2f}%")
    if "fills" in figures:
        fills = figures["fills"]
        if isinstance(fills, bool) or not isinstance(fills, int) or fills < 0:
            raise ValueError(f"fills must be a non-negative integer, got {fills!r}")
        parts.append(f"{fills:,} fills")
    return " | ".join(parts) + " #Sei"


Status = Literal["posted", "disabled", "refused", "rate_limited", "failed"]


@dataclass(frozen=True, slots=True)
class PublishResult:
    status: Status
    post_id: str | None = None
    reasons: tuple[str, ...] = ()
    error: str | None = None
    retry_in_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "posted"


class SocialPublisher:
    """Posts summaries to X. Never raises; see PublishResult.status."""

    def __init__(
        self,
        config: SocialConfig,
        *,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._session = session
        self._clock = clock
        self._last_post: float | None = None
        self._lock = asyncio.Lock()
        token = config.bearer_token
        self._token = token.get_secret_value() if token is not None else None
        if self._token is not None and len(self._token) >= logs.MIN_SECRET_LEN:
            logs.register_secret(self._token)

    def _secrets(self) -> tuple[str, ...]:
        return (self._token,) if self._token else ()

    async def publish_summary(
        self, figures: Mapping[str, object], period: str = "Daily"
    ) -> PublishResult:
        """Format `figures` (see format_summary) and publish them."""
        try:
            text = format_summary(figures, period)
        except (TypeError, ValueError) as e:
            return PublishResult("refused", reasons=(f"invalid figures: {e}",))
        return await self.publish(text)

    async def publish(self, text: str) -> PublishResult:
        """Publish `text` if enabled, clean, short enough and not rate-limited."""
        if not self.config.enabled or self._token is None:
            return PublishResult("disabled")
        if not isinstance(text, str) or not text.strip():
            return PublishResult("refused", reasons=("empty text",))
        reasons = deny_reasons(text, self._secrets())
        if weighted_length(text) > MAX_TWEET_WEIGHT:
            reasons = (*reasons, f"longer than {MAX_TWEET_WEIGHT} characters")
        if reasons:
            log.warning("social post refused", extra={"reasons": list(reasons)})
            return PublishResult("refused", reasons=reasons)
        async with self._lock:
            now = self._clock()
            if self._last_post is not None and now - self._last_post < self.config.min_interval_s:
                wait = self.config.min_interval_s - (now - self._last_post)
                return PublishResult("rate_limited", retry_in_s=wait)
            self._last_post = now
            return await self._post(text)

    async def _post(self, text: str) -> PublishResult:
        url = self.config.base_url.rstrip("/") + "/2/tweets"
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"}
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        try:
            if self._session is not None:
                status, body = await self._request(self._session, url, text, headers, timeout)
            else:
                async with aiohttp.ClientSession() as session:
                    status, body = await self._request(session, url, text, headers, timeout)
        except Exception as e:  # network, timeout, or anything odd: report, never raise
            error = scrub(f"{type(e).__name__}: {e}".rstrip(": "), self._secrets())
            log.warning("social post failed", extra={"error": error})
            return PublishResult("failed", error=error)
        post_id = None
        if status == 201 and isinstance(body, dict):
            data = body.get("data")
            if isinstance(data, dict) and isinstance(data.get("id"), str):
                post_id = data["id"]
        if post_id is None:
            error = scrub(f"HTTP {status}: {str(body)[:200]!r}", self._secrets())
            log.warning("social post failed", extra={"error": error})
            return PublishResult("failed", error=error)
        log.info("social post published", extra={"post_id": post_id})
        return PublishResult("posted", post_id=post_id)

    @staticmethod
    async def _request(
        session: aiohttp.ClientSession,
        url: str,
        text: str,
        headers: dict[str, str],
        timeout: aiohttp.ClientTimeout,
    ) -> tuple[int, object]:
        async with session.post(url, json={"text": text}, headers=headers, timeout=timeout) as r:
            raw = await r.content.read(65536)
            try:
                body: object = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", errors="replace")
            return r.status, body
