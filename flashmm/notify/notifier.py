"""The platform notifier: routes a Notification to channels by severity, retries each channel
with exponential backoff, suppresses repeats inside a de-dup window, and never raises.

    notifier = Notifier.from_config(config)
    result = await notifier.notify(Notification("Emergency stop", "drawdown limit hit",
                                                Severity.CRITICAL, "risk", "estop:SEI/USDC"))
    if not result.delivered: ...

Secrets of every channel are scrubbed from results and logs, and registered with
`flashmm.logs` so that the JSON log output redacts them too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

import aiohttp

from flashmm import logs
from flashmm.notify.channels import (
    Channel,
    ChannelError,
    EmailChannel,
    Notification,
    SlackChannel,
    WebhookChannel,
    scrub,
)
from flashmm.notify.config import (
    ChannelConfig,
    EmailConfig,
    NotifierConfig,
    RetryPolicy,
    SlackConfig,
    WebhookConfig,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChannelResult:
    channel: str
    ok: bool
    attempts: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class NotifyResult:
    """What happened to one notify() call. `suppressed_repeats` counts repeats of this key
    suppressed so far (when suppressed) or folded into this delivery (when sent)."""

    dedup_key: str
    suppressed: bool = False
    channels: tuple[ChannelResult, ...] = ()
    suppressed_repeats: int = 0
    error: str | None = None

    @property
    def delivered(self) -> bool:
        """At least one channel took the notification."""
        return any(r.ok for r in self.channels)

    @property
    def ok(self) -> bool:
        """Every routed channel took it (False when nothing was routed or it was suppressed)."""
        return bool(self.channels) and all(r.ok for r in self.channels)

    def by_channel(self) -> dict[str, ChannelResult]:
        return {r.channel: r for r in self.channels}


def build_channel(config: ChannelConfig, session: aiohttp.ClientSession | None = None) -> Channel:
    if isinstance(config, SlackConfig):
        return SlackChannel(config, session)
    if isinstance(config, WebhookConfig):
        return WebhookChannel(config, session)
    if isinstance(config, EmailConfig):
        return EmailChannel(config)
    raise TypeError(f"unknown channel config {type(config).__name__}")


class Notifier:
    """Routes, retries and de-duplicates. One instance per process; safe for concurrent use
    from one event loop."""

    def __init__(
        self,
        channels: Sequence[Channel],
        *,
        retry: RetryPolicy | None = None,
        dedup_window_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        names = [c.name for c in channels]
        if len(set(names)) != len(names):
            raise ValueError(f"channel names must be unique, got {names}")
        if dedup_window_s < 0:
            raise ValueError("dedup_window_s must be >= 0")
        self.channels = tuple(channels)
        self.retry = retry or RetryPolicy()
        self.dedup_window_s = dedup_window_s
        self._clock = clock
        self._sleep = sleep
        self._last_sent: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._secrets = tuple(s for c in self.channels for s in c.secrets() if s)
        for secret in self._secrets:
            if len(secret) >= logs.MIN_SECRET_LEN:
                logs.register_secret(secret)

    @classmethod
    def from_config(
        cls, config: NotifierConfig, session: aiohttp.ClientSession | None = None
    ) -> Notifier:
        channels = [build_channel(c, session) for c in config.channels]
        return cls(channels, retry=config.retry, dedup_window_s=config.dedup_window_s)

    def suppressed_count(self, dedup_key: str) -> int:
        """Repeats of `dedup_key` suppressed since it was last delivered."""
        return self._suppressed.get(dedup_key, 0)

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets)

    async def notify(self, n: Notification) -> NotifyResult:
        """Deliver `n` to every channel whose severities include n.severity. Never raises
        (except for task cancellation); the result says what each channel did."""
        key = "?"
        try:
            key = n.key
            return await self._notify(n, key)
        except Exception as e:  # a bug here must not take the caller's workflow down
            error = self._scrub(f"{type(e).__name__}: {e}")
            log.error("notify failed internally", extra={"dedup_key": key, "error": error})
            return NotifyResult(dedup_key=key, error=error)

    async def _notify(self, n: Notification, key: str) -> NotifyResult:
        now = self._clock()
        self._prune(now)
        last = self._last_sent.get(key)
        if last is not None and now - last < self.dedup_window_s:
            count = self._suppressed[key] = self._suppressed.get(key, 0) + 1
            log.info("notification suppressed", extra={"dedup_key": key, "repeats": count})
            return NotifyResult(dedup_key=key, suppressed=True, suppressed_repeats=count)

        targets = [c for c in self.channels if c.accepts(n.severity)]
        if not targets:
            log.warning(
                "no channel routes this severity",
                extra={"dedup_key": key, "severity": str(n.severity)},
            )
            return NotifyResult(dedup_key=key, error=f"no channel accepts {n.severity}")

        repeats = self._suppressed.pop(key, 0)
        self._last_sent[key] = now  # reserve, so concurrent repeats are suppressed
        to_send = n
        if repeats:
            note = f"({repeats} repeat(s) suppressed in the last {self.dedup_window_s:g}s)"
            to_send = replace(n, text=f"{n.text}\n\n{note}" if n.text else note)
        results = await asyncio.gather(*(self._deliver(c, to_send) for c in targets))
        if not any(r.ok for r in results):
            # nothing went out: a later retry by the caller must not be suppressed
            if self._last_sent.get(key) == now:
                del self._last_sent[key]
            self._suppressed[key] = self._suppressed.get(key, 0) + repeats
        return NotifyResult(dedup_key=key, channels=tuple(results), suppressed_repeats=repeats)

    def _prune(self, now: float) -> None:
        expired = [k for k, t in self._last_sent.items() if now - t >= self.dedup_window_s]
        for k in expired:
            del self._last_sent[k]

    async def _deliver(self, channel: Channel, n: Notification) -> ChannelResult:
        policy = self.retry
        fields = {"channel": channel.name, "dedup_key": n.key, "severity": str(n.severity)}
        error = "no attempt made"
        for attempt in range(1, policy.max_attempts + 1):
            try:
                async with asyncio.timeout(policy.attempt_timeout_s):
                    await channel.send(n, policy.attempt_timeout_s)
            except ChannelError as e:
                failure = e
            except TimeoutError:
                msg = f"timed out after {policy.attempt_timeout_s:g}s"
                failure = ChannelError(msg, retryable=True)
            except Exception as e:  # a channel bug: report it, retrying is harmless
                failure = ChannelError(f"{type(e).__name__}: {e}", retryable=True)
            else:
                log.info("notification sent", extra={**fields, "attempts": attempt})
                return ChannelResult(channel.name, True, attempt)

            error = self._scrub(str(failure))
            last = attempt == policy.max_attempts or not failure.retryable
            if last:
                log.warning(
                    "notification failed", extra={**fields, "attempts": attempt, "error": error}
                )
                return ChannelResult(channel.name, False, attempt, error)
            delay = policy.delay_after(attempt)
            if failure.retry_after_s is not None:
                delay = min(max(delay, failure.retry_after_s), policy.max_delay_s)
            log.info(
                "notification attempt failed; retrying",
                extra={**fields, "attempt": attempt, "error": error, "retry_in_s": delay},
            )
            await self._sleep(delay)
        return ChannelResult(channel.name, False, policy.max_attempts, error)
