"""The LLM regime advisor: a slow background task that may widen spreads or damp the signal.

Every ``interval_s`` it builds a compact summary of one ``MarketMaker`` (book, recent trade
and volatility features, the model signal, a coarse inventory bucket), asks the LLM for a
regime assessment under a hard timeout and a call budget, clamps the answer to the
configured box and sets ``mm.adjustment``. The quote cycle never waits on it: the call is
async and the advisor only ever replaces one frozen ``Adjustment`` with another.

Failure policy: a timeout, HTTP error, rate limit, malformed or unsafe reply, exhausted
budget or any unexpected error is counted in ``stats.failures[kind]`` and logged; it never
raises into the event loop and never sets an adjustment. A previous good advisory stays
until its TTL (``ttl_s`` after it was received) and then the adjustment returns to the
neutral ``Adjustment()``. Stopping the advisor withdraws its advisory at once. The advisor
only resets an adjustment it set itself, so an operator's own override is left alone.

    advisor = start_advisor(settings.llm, mm)   # None when off: nothing changes
    ...
    if advisor is not None:
        await advisor.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flashmm.config.llm import LLMSettings
from flashmm.ml.llm import AdvisoryError, Assessment, AzureRegimeClient, RegimeClient
from flashmm.ml.llm_summary import FEATURE_SECTIONS, utilisation_bucket
from flashmm.ml.schema import FEATURE_NAMES
from hotpath.engine import Adjustment, MarketMaker

log = logging.getLogger(__name__)

NEUTRAL = Adjustment()
HOUR_S = 3_600.0
DAY_S = 86_400.0
MAX_ADJUSTMENT_REASON = 160

_FEATURE_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}


def build_summary(mm: MarketMaker) -> dict[str, Any]:
    """What the LLM sees of ``mm``: public book shape, recent-flow features, volatility, the
    model's (direction, confidence) and an inventory utilisation bucket. No PnL, fees, our
    own quotes, order ids, position sizes or anything account-related."""
    st = mm.status()
    bid, ask = int(st["best_bid"]), int(st["best_ask"])
    mid = (bid + ask) * 0.5 if bid and ask else 0.0
    book = mm.book
    bid_depth = sum(lots for _, lots in book.depth(1, 5))
    ask_depth = sum(lots for _, lots in book.depth(-1, 5))
    total = bid_depth + ask_depth
    sigma = float(st["sigma"])
    summary: dict[str, Any] = {
        "market": st["symbol"],
        "state": st["state"],
        "book": {
            "mid": mid * mm.instrument.tick if mid else None,
            "spread_ticks": ask - bid if mid else None,
            "spread_bps": (ask - bid) / mid * 1e4 if mid else None,
            "bid_depth_5": bid_depth,
            "ask_depth_5": ask_depth,
            "imbalance_5": (bid_depth - ask_depth) / total if total else None,
            "bid_levels": len(book.bids),
            "ask_levels": len(book.asks),
        },
        "volatility": {"sigma_bps_sqrt_s": sigma / mid * 1e4 if mid else None},
    }
    live = mm.features.samples > 0
    summary["features_live"] = live
    if live:
        values = mm.features.values
        for section, names in FEATURE_SECTIONS.items():
            part = summary.setdefault(section, {})
            for name in names:
                i = _FEATURE_INDEX.get(name)
                if i is not None and i < len(values):
                    part[name] = values[i]
    direction, confidence = mm.last_signal
    summary["model"] = {"direction": direction, "confidence": confidence}
    lots = int(st["position_lots"])
    limit = mm.limits.max_position_notional
    if lots == 0:
        util = 0.0
    elif mid and limit > 0:
        util = abs(lots) * mid * mm.instrument.notional_per_tick_lot / limit
    else:
        util = math.nan  # a position we cannot value: say so, not how big it is
    summary["inventory_utilisation"] = utilisation_bucket(util)
    return summary


class CallBudget:
    """At most ``per_hour`` calls in any rolling hour and ``per_day`` in any rolling day."""

    __slots__ = ("_calls", "per_day", "per_hour")

    def __init__(self, per_hour: int, per_day: int) -> None:
        if per_hour < 1 or per_day < 1:
            raise ValueError("call budgets must be at least 1")
        self.per_hour = per_hour
        self.per_day = per_day
        self._calls: deque[float] = deque()

    def used(self, now: float) -> tuple[int, int]:
        """(calls in the last hour, calls in the last day) at ``now`` (seconds)."""
        calls = self._calls
        while calls and now - calls[0] >= DAY_S:
            calls.popleft()
        return sum(1 for t in calls if now - t < HOUR_S), len(calls)

    def try_acquire(self, now: float) -> bool:
        """Spend one call at ``now`` if both windows allow it."""
        hour, day = self.used(now)
        if hour >= self.per_hour or day >= self.per_day:
            return False
        self._calls.append(now)
        return True


@dataclass(slots=True)
class AdvisorStats:
    """Counters for status output and metrics."""

    calls: int = 0  # rounds that spent budget (normally one request each)
    applied: int = 0
    clamped: int = 0  # applied after clamping into the configured box
    expired: int = 0  # advisories that lapsed back to neutral
    skipped: int = 0  # rounds skipped while the server's Retry-After runs
    failures: Counter[str] = field(default_factory=Counter)
    last_regime: str = ""
    last_failure: str = ""


class RegimeAdvisor:
    """Owns ``mm.adjustment`` while running. Off (``enabled`` False) when ``settings`` is
    None or not enabled and configured, or the API key variable is unset: then ``run()``
    returns at once and no call is made."""

    def __init__(
        self,
        settings: LLMSettings | None,
        mm: MarketMaker,
        *,
        client: RegimeClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.mm = mm
        self.stats = AdvisorStats()
        self.task: asyncio.Task[None] | None = None
        self._clock = clock
        self._applied: Adjustment | None = None
        self._expires_at = math.inf
        self._not_before = -math.inf
        self._budget_blocked = False
        self._client: RegimeClient | None = None
        if settings is None or not settings.configured:
            self._budget = CallBudget(1, 1)
            return
        self._budget = CallBudget(settings.max_calls_per_hour, settings.max_calls_per_day)
        if client is None:
            key = settings.api_key()
            if key is None:
                log.warning(
                    "LLM advisor is enabled but environment variable %s is not set; it stays off",
                    settings.api_key_env,
                )
                return
            client = AzureRegimeClient(settings, key)
        self._client = client

    def __repr__(self) -> str:
        s = self.settings
        where = f"{s.azure_endpoint}/{s.deployment}" if s is not None and s.configured else "off"
        return f"RegimeAdvisor({self.mm.instrument.symbol}, {where}, enabled={self.enabled})"

    @property
    def enabled(self) -> bool:
        return self._client is not None

    @property
    def active(self) -> Adjustment | None:
        """The advisory in force (set by this advisor and not expired), if any."""
        return self._applied

    # --- one round ----------------------------------------------------------------------
    async def step(self) -> None:
        """Expire, check back-off and budget, ask, apply. Never raises (cancellation aside)."""
        client, s = self._client, self.settings
        if client is None or s is None:
            return
        now = self._clock()
        self.expire(now)
        if now < self._not_before:
            self.stats.skipped += 1
            return
        if not self._budget.try_acquire(now):
            self._fail(AdvisoryError("budget", "call budget exhausted"), quiet=self._budget_blocked)
            self._budget_blocked = True
            return
        self._budget_blocked = False
        self.stats.calls += 1
        try:
            assessment = await client.assess(build_summary(self.mm))
            self._apply(assessment, s)
        except AdvisoryError as e:
            self._fail(e)
            if e.retry_after_s:
                self._not_before = self._clock() + e.retry_after_s
        except Exception as e:  # a bug must not take the quote loop's event loop down
            self._fail(AdvisoryError("error", type(e).__name__), exc=e)

    def expire(self, now: float | None = None) -> bool:
        """Return to neutral if the advisory's TTL has run out; True if it did."""
        if self._applied is None:
            return False
        if (self._clock() if now is None else now) < self._expires_at:
            return False
        self._withdraw()
        self.stats.expired += 1
        log.info("LLM advisory expired; back to neutral", extra={"market": self._symbol})
        return True

    def _apply(self, a: Assessment, s: LLMSettings) -> None:
        # the client clamps already; clamp again here so no client can leave the box
        spread, scale = a.spread_mult, a.signal_scale
        if not (math.isfinite(spread) and math.isfinite(scale)):
            raise AdvisoryError("unsafe", "non-finite factor")
        spread = min(max(spread, 1.0), s.max_spread_mult)
        scale = min(max(scale, s.min_signal_scale), 1.0)
        reason = f"llm {a.regime}: {a.reason}"[:MAX_ADJUSTMENT_REASON]
        adj = Adjustment(spread, scale, reason)
        self.mm.adjustment = adj
        self._applied = adj
        self._expires_at = self._clock() + s.ttl_s
        st = self.stats
        st.applied += 1
        st.clamped += int(a.clamped or (spread, scale) != (a.spread_mult, a.signal_scale))
        st.last_regime = a.regime
        log.info(
            "LLM advisory applied",
            extra={
                "market": self._symbol,
                "regime": a.regime,
                "spread_mult": spread,
                "signal_scale": scale,
                "reason": a.reason,
            },
        )

    def _fail(self, e: AdvisoryError, quiet: bool = False, exc: Exception | None = None) -> None:
        self.stats.failures[e.kind] += 1
        self.stats.last_failure = e.kind
        if quiet:
            return
        log.warning(
            "LLM advisory failed (%s); adjustment unchanged until its TTL",
            e.detail,
            extra={"market": self._symbol, "llm_failure": e.kind},
            exc_info=exc,
        )

    def _withdraw(self) -> None:
        if self._applied is not None and self.mm.adjustment is self._applied:
            self.mm.adjustment = NEUTRAL
        self._applied = None
        self._expires_at = math.inf

    @property
    def _symbol(self) -> str:
        return self.mm.instrument.symbol

    # --- the task -----------------------------------------------------------------------
    async def run(self) -> None:
        """Ask every ``interval_s`` and expire on time until cancelled; returns at once when
        off. On the way out the advisory is withdrawn and the client closed."""
        client, s = self._client, self.settings
        if client is None or s is None:
            log.info("LLM advisor off")
            return
        log.info(
            "LLM advisor on",
            extra={"market": self._symbol, "interval_s": s.interval_s, "ttl_s": s.ttl_s},
        )
        try:
            next_call = self._clock()
            while True:
                now = self._clock()
                self.expire(now)
                if now >= next_call:
                    next_call = now + s.interval_s
                    await self.step()
                    next_call = max(next_call, self._not_before)
                wake = min(next_call, self._expires_at)
                await asyncio.sleep(max(0.0, wake - self._clock()))
        finally:
            self._withdraw()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.aclose(), 1.0)

    def start(self) -> asyncio.Task[None] | None:
        """Start ``run()`` as a task on the running loop (None when off)."""
        if not self.enabled:
            return None
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self.run(), name=f"llm-advisor-{self._symbol}")
        return self.task

    async def stop(self) -> None:
        """Cancel the task and wait for it; withdraw the advisory and close the client."""
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return  # run() withdrew the advisory and closed the client
        self._withdraw()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.aclose(), 1.0)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready view for status output."""
        adj = self.mm.adjustment
        left = self._expires_at - self._clock() if self._applied is not None else None
        return {
            "enabled": self.enabled,
            "regime": self.stats.last_regime if self._applied is not None else "",
            "spread_mult": adj.spread_mult,
            "signal_scale": adj.signal_scale,
            "expires_in_s": round(left, 1) if left is not None else None,
            "calls": self.stats.calls,
            "applied": self.stats.applied,
            "failures": dict(self.stats.failures),
        }


def start_advisor(settings: LLMSettings | None, mm: MarketMaker) -> RegimeAdvisor | None:
    """Create and start the advisor for ``mm`` on the running loop; None (and nothing
    started, nothing changed) when the LLM settings are absent, disabled or lack a key."""
    if settings is None or not settings.configured:
        return None
    advisor = RegimeAdvisor(settings, mm)
    return advisor if advisor.start() is not None else None
