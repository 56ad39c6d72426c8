"""Backtest: a simulated session through the hot path's own engine, as fast as the CPU allows.

Assumptions (each a named option): the engine reads the matcher's L2 book directly (no
market-data latency; ``VenueParams`` sets order and report latency); quotes refresh every
``1/quote_hz`` simulated seconds and at once when the book moves through a live quote.

Two event cores give the same results for the same seed: ``native`` (default; compiled, the
engine is called once per stop: quote, sample, report, requote) and ``python`` (the
reference ``SimVenueCore``, one engine call per event). A signal that uses features needs
every book change (``Signal.observe``) and always runs on the Python core.

Spread improvement is measured against a counterfactual: the same seed and schedule with our
engine disabled (``counterfactual``). Both runs sample the touch at the scheduled quote times
(``flashmm.sim.touch``); see ``docs/spread.md``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from flashmm.book.l2 import L2Book
from flashmm.domain.instrument import SEI_USDC, Instrument
from flashmm.sim import native as sn
from flashmm.sim.core import SimVenueCore
from flashmm.sim.matching import Trade
from flashmm.sim.native import R_STOP, NativeVenueCore, Report
from flashmm.sim.params import MarketParams, VenueParams
from flashmm.sim.touch import TouchSpread
from flashmm.venue.base import OrderFilled, VenueEvent
from hotpath.engine import MarketMaker, Signal
from hotpath.quoting.params import QuoteParams
from hotpath.quoting.touch_policy import TouchPolicyConfig
from hotpath.risk import RiskLimits
from hotpath.summary import trading_figures


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    minutes: float = 10.0
    quote_hz: float = 5.0
    sample_every_s: float = 1.0
    market: MarketParams = field(default_factory=MarketParams)
    venue: VenueParams = field(default_factory=VenueParams)
    quoting: QuoteParams = field(default_factory=QuoteParams)
    limits: RiskLimits = field(default_factory=RiskLimits)
    instrument: Instrument = SEI_USDC
    sim_core: str = "native"  # "native" (compiled) or "python" (the reference core)
    # the touch policy (improve / join / behind per side) on top of the quote model; None: off
    policy: TouchPolicyConfig | None = None
    # also run the same seed without us, for spread_improvement_pct (a second, cheap run)
    counterfactual: bool = True

    def __post_init__(self) -> None:
        if self.sim_core not in ("native", "python"):
            raise ValueError(f"sim_core must be 'native' or 'python', got {self.sim_core!r}")
        if self.minutes <= 0:
            raise ValueError(f"minutes must be positive, got {self.minutes}")
        if self.quote_hz <= 0:
            raise ValueError(f"quote_hz must be positive, got {self.quote_hz}")


@dataclass(slots=True)
class Series:
    """Per-sample paths for the report."""

    t: list[float] = field(default_factory=list)
    mid: list[float] = field(default_factory=list)
    best_bid: list[int] = field(default_factory=list)
    best_ask: list[int] = field(default_factory=list)
    our_bid: list[int] = field(default_factory=list)
    our_ask: list[int] = field(default_factory=list)
    position: list[int] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)


@dataclass(slots=True)
class BacktestResult:
    summary: dict[str, Any]
    series: Series
    fills: list[tuple[float, int, int, int]]  # (t, side, price, lots)


class Backtest:
    """Wires a ``MarketMaker`` to a ``SimVenueCore`` on the simulated clock."""

    def __init__(self, cfg: BacktestConfig, signal: Signal | None = None) -> None:
        self.cfg = cfg
        self.core: SimVenueCore | None = None
        self.native: NativeVenueCore | None = None
        book: L2Book
        if cfg.sim_core == "native" and (signal is None or not signal.uses_features):
            self.native = NativeVenueCore(
                cfg.instrument, cfg.market, cfg.venue, cfg.quoting.requote_min_interval_s
            )
            book = self.native.book
        else:
            self.core = SimVenueCore(
                cfg.instrument, cfg.market, cfg.venue, self._on_report, self._on_trades
            )
            book = self.core.exchange.book
        self.mm = MarketMaker(
            cfg.instrument, cfg.quoting, cfg.limits, book=book, signal=signal, policy=cfg.policy
        )
        self.series = Series()
        self.touch = TouchSpread()
        self.fills: list[tuple[float, int, int, int]] = []
        self.max_abs_position_notional = 0.0
        self._market_events = 0

    def _on_report(self, t: float, ev: VenueEvent) -> None:
        """The Python core's order reports, through the engine's one event handler."""
        self.mm.apply(ev, int(t * 1e9))
        if isinstance(ev, OrderFilled):
            f = ev.fill
            self.fills.append((t, int(f.side), f.price, f.lots))
            n = self.mm.position_notional_at(f.price)
            self.max_abs_position_notional = max(self.max_abs_position_notional, n)

    def _on_trades(self, t: float, trades: list[Trade]) -> None:
        mm = self.mm
        ts = int(t * 1e9)
        for tr in trades:
            mm.on_trade(tr.price, tr.lots, tr.aggressor, ts)

    def run(self) -> BacktestResult:
        wall0 = time.perf_counter()
        events = self._run_native() if self.native is not None else self._run_python()
        wall = time.perf_counter() - wall0
        return BacktestResult(self._summary(events, wall), self.series, self.fills)

    def _run_native(self) -> int:
        cfg = self.cfg
        core = self.native
        assert core is not None
        mm = self.mm
        on_trade = mm.on_trade
        on_market_data = mm.on_market_data
        start = core.time
        end = start + cfg.minutes * 60.0
        period = 1.0 / cfg.quote_hz
        next_quote = next_sample = start
        ev0 = core.events
        mm.on_data(int(start * 1e9))
        while True:
            r = core.advance(next_sample if next_sample < next_quote else next_quote)
            rows = core.take_trades()
            if rows:
                # the engine sees each trade with the book's mid as it was after it
                for price, lots, aggressor, bb, ba, ts in rows:
                    on_trade(price, lots, aggressor, ts, (bb + ba) * 0.5 if bb and ba else 0.0)
            reports = core.take_reports()
            if reports:
                self._deliver(core, reports)
                core.sync_best()
            ts, t = core.take_last_event()
            if ts >= 0 and on_market_data(ts):
                self._quote_native(core, t, reactive=True)
            if r == R_STOP:
                if next_quote > end and next_sample > end:
                    break
                if next_sample <= next_quote:
                    core.run_until_later(next_sample)
                    self._sample(next_sample)
                    next_sample += cfg.sample_every_s
                else:
                    core.run_until_later(next_quote)
                    self._sample_touch()
                    self._quote_native(core, next_quote, reactive=False)
                    next_quote += period
        core.sync_levels()
        return core.events - ev0

    def _deliver(self, core: NativeVenueCore, reports: list[Report]) -> None:
        """``_on_report`` for the native core's raw reports, each seen with the touch as it
        was when it reached us. The engine's requote test after each report was made
        natively; the last one's effect (``last_data_ns``) follows at the stop."""
        mm = self.mm
        book = mm.book
        for rep in reports:
            kind, cid, a, _, price, lots, side, bb, ba, _, due = rep
            book.best_bid = bb
            book.best_ask = ba
            if kind == sn.FILL:
                mm.on_fill(core.fill(rep))
                self.fills.append((due, side, price, lots))
                n = mm.position_notional_at(price)
                self.max_abs_position_notional = max(self.max_abs_position_notional, n)
            elif kind == sn.ACK:
                mm.on_accepted(cid, a)
            elif kind == sn.CANCELLED or kind == sn.CANCEL_REJ:
                mm.on_cancelled(cid)
            elif kind == sn.REJ_POST:
                mm.on_rejected(cid, "post-only order would cross")
            else:
                mm.on_rejected(cid, "invalid price or size")

    def _quote_native(self, core: NativeVenueCore, t: float, reactive: bool) -> None:
        now = int(t * 1e9)
        batch = self.mm.cycle(now, reactive=reactive)
        bid, ask = self.mm.quoted
        core.set_quoted(bid, ask, now)
        if batch:
            core.submit(batch, t)

    def _run_python(self) -> int:
        cfg = self.cfg
        core = self.core
        assert core is not None
        market = core.market
        mm = self.mm
        start = market.time
        end = start + cfg.minutes * 60.0
        period = 1.0 / cfg.quote_hz
        next_quote = start
        next_sample = start
        ev0 = market.events
        mm.on_data(int(start * 1e9))
        while True:
            t_next = core.next_time()
            if next_quote <= t_next or next_sample <= t_next:
                if next_quote > end and next_sample > end:
                    break
                if next_sample <= next_quote:
                    market.run_until(next_sample)
                    self._sample(next_sample)
                    next_sample += cfg.sample_every_s
                    continue
                market.run_until(next_quote)
                self._sample_touch()
                self._quote(core, next_quote, reactive=False)
                next_quote += period
                continue
            core.step()
            now = market.time
            if mm.on_market_data(int(now * 1e9)):
                self._quote(core, now, reactive=True)
        return market.events - ev0

    def _quote(self, core: SimVenueCore, t: float, reactive: bool) -> None:
        batch = self.mm.cycle(int(t * 1e9), reactive=reactive)
        if batch:
            core.submit(batch, t)

    def _sample_touch(self) -> None:
        """The touch and our innermost resting quotes at a scheduled quote time (before the
        cycle): the grid of the time-weighted spreads."""
        bid, ask = self.mm.resting_touch()
        b = self.mm.book
        self.touch.add(b.best_bid, b.best_ask, bid, ask)

    def _sample(self, t: float) -> None:
        s = self.series
        b = self.mm.book
        mid = b.mid
        pos = self.mm.position
        our_bid, our_ask = self.mm.quoted
        s.t.append(t)
        s.mid.append(mid)
        s.best_bid.append(b.best_bid)
        s.best_ask.append(b.best_ask)
        s.our_bid.append(our_bid)
        s.our_ask.append(our_ask)
        s.position.append(pos.lots)
        s.equity.append(pos.net_pnl(mid) if mid else 0.0)

    def _summary(self, events: int, wall: float) -> dict[str, Any]:
        figures = trading_figures(
            self.mm, self.series, self.fills, self.max_abs_position_notional, events, wall
        )
        without = counterfactual_touch(self.cfg) if self.cfg.counterfactual else None
        spreads = spread_figures(self.touch, without)
        if self.mm.policy is not None:
            spreads.update(self.mm.policy.figures())
        return {"seed": self.cfg.market.seed, "minutes": self.cfg.minutes, **figures, **spreads}


def counterfactual_touch(cfg: BacktestConfig) -> TouchSpread:
    """The same seed's market without us: the same schedule of stops with the engine
    disabled (it cycles, never quotes). On the compiled core, which gives the same market as
    the Python one; no signal, which could not change a market we are not in."""
    bt = Backtest(replace(cfg, counterfactual=False, sim_core="native", policy=None))
    bt.mm.stop()
    bt.run()
    if bt.mm.stats.quotes_sent or bt.fills:
        raise AssertionError("the counterfactual run traded")
    return bt.touch


def spread_figures(with_us: TouchSpread, without_us: TouchSpread | None) -> dict[str, Any]:
    """Time-weighted touch spread with us and, from the counterfactual, without us; the
    improvement is how much narrower the market is because we are in it. ``None`` where the
    counterfactual was not run."""
    w = with_us.market_bps
    wo = without_us.market_bps if without_us is not None else None
    return {
        "market_spread_bps_with_us": w,
        "market_spread_bps_without_us": wo,
        "spread_improvement_pct": (1 - w / wo) * 100 if wo else None,
        "our_quoted_spread_bps": with_us.ours_bps,
        "our_quoted_vs_without_us_pct": (1 - with_us.ours_bps / wo) * 100
        if wo and with_us.ours
        else None,
        "our_two_sided_share": with_us.ours_share,
        "our_touch_share": with_us.touch_share,
        "spread_samples": with_us.samples,
    }


def run_backtest(cfg: BacktestConfig, signal: Signal | None = None) -> BacktestResult:
    """Run one seeded session; same config and seed give the same result."""
    return Backtest(cfg, signal).run()
