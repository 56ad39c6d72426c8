"""The market maker's synchronous core, shared by the live quote loop and the backtest.

Time is passed in (ns), never read here, so the same code runs against wall clock and
simulated clock. One ``cycle`` = features → model signal → quotes → risk → order diff, each
stage timed with ``perf_counter_ns`` into ``timers``. In the live loop a background signal's
features are sampled just ahead of the cycle (``prepare_signal``) and its model runs on its
own thread; the cycle only takes the latest fresh result, never waits for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any, Protocol, cast

from flashmm.book.l2 import L2Book
from flashmm.domain.instrument import Instrument
from flashmm.domain.orders import Fill, OrderState
from flashmm.ml.features import FeatureEngine
from flashmm.venue.base import OrderBatch
from hotpath.latency import StageTimers
from hotpath.orders import OrderManager
from hotpath.quoting.estimators import IntensityEstimator, VolEstimator
from hotpath.quoting.params import QuoteParams
from hotpath.quoting.quoter import Quote, QuoteInputs, build_quotes
from hotpath.quoting.touch_policy import TouchPolicy, TouchPolicyConfig
from hotpath.risk import RiskEngine, RiskLimits, TradingState


class Signal(Protocol):
    """A directional signal: (direction −1..1, confidence 0..1) from the feature vector.

    ``uses_features`` False means the engine need not compute the 64 features at all."""

    uses_features: bool

    def predict(self, features: list[float], ts_ns: int, mid: float) -> tuple[float, float]: ...

    def observe(self, ts_ns: int, mid: float) -> None:
        """Every book change (scores past predictions)."""


class BackgroundSignal(Signal, Protocol):
    """A signal computed off the cycle: ``submit`` hands it a sampled feature row (never
    blocks), ``current`` is the latest fresh result (or a fallback), at once."""

    lead_ns: int

    def submit(self, features: list[float], ts_ns: int, mid: float) -> None: ...

    def current(self, features: list[float], ts_ns: int, mid: float) -> tuple[float, float]: ...


class NoSignal:
    """The neutral signal, used when no model is loaded."""

    uses_features = False

    def predict(self, features: list[float], ts_ns: int, mid: float) -> tuple[float, float]:
        return 0.0, 0.0

    def observe(self, ts_ns: int, mid: float) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Adjustment:
    """A bounded nudge from a slow advisor (e.g. an LLM regime assessment): it may only
    widen spreads (``spread_mult`` ≥ 1) or damp the signal (``signal_scale`` in [0, 1])."""

    spread_mult: float = 1.0
    signal_scale: float = 1.0
    reason: str = ""

    def __post_init__(self) -> None:
        if not 1.0 <= self.spread_mult <= 3.0:
            raise ValueError(f"spread_mult must be in [1, 3], got {self.spread_mult}")
        if not 0.0 <= self.signal_scale <= 1.0:
            raise ValueError(f"signal_scale must be in [0, 1], got {self.signal_scale}")


@dataclass(slots=True)
class CycleStats:
    cycles: int = 0
    reactive_cycles: int = 0
    quotes_sent: int = 0
    cancels_sent: int = 0
    fills: int = 0
    placed_buy: int = 0
    placed_sell: int = 0
    fills_buy: int = 0
    fills_sell: int = 0
    quoted_spread_sum: float = 0.0
    quoted_spread_n: int = 0
    market_spread_sum: float = 0.0


def reducing_only(quotes: list[Quote], position_lots: int) -> list[Quote]:
    """Keep quotes that work the position toward flat, sized so that all of them filling
    lands at most at flat."""
    left = abs(position_lots)
    out: list[Quote] = []
    for q in quotes:
        if q.side * position_lots >= 0 or left <= 0:
            continue
        n = min(q.lots, left)
        out.append(q._replace(lots=n))
        left -= n
    return out


class MarketMaker:
    """Book in, batches out. The owner feeds events and calls ``cycle`` on its schedule."""

    def __init__(
        self,
        instrument: Instrument,
        quote_params: QuoteParams,
        limits: RiskLimits,
        book: L2Book | None = None,
        signal: Signal | None = None,
        order_prefix: str = "fmm",
        cancel_retry_s: float = 1.0,
        policy: TouchPolicyConfig | None = None,
    ) -> None:
        self.instrument = instrument
        self.params = quote_params
        self.book = book if book is not None else L2Book()
        self.features = FeatureEngine()
        self.vol = VolEstimator(quote_params.prior_sigma)
        self.intensity = IntensityEstimator(quote_params.prior_A, quote_params.prior_k)
        self.om = OrderManager(instrument, order_prefix)
        self.risk = RiskEngine(limits, instrument.notional_per_tick_lot)
        self.signal: Signal = signal if signal is not None else NoSignal()
        self.timers = StageTimers()
        self.cancel_retry_ns = int(cancel_retry_s * 1e9)
        self.stats = CycleStats()
        self.last_signal = (0.0, 0.0)
        self.adjustment = Adjustment()
        # improve / join / stay behind the touch per side, on top of the model (None: off)
        self.policy = TouchPolicy(policy) if policy is not None else None
        self.enabled = True  # False: stopped by the operator (no quotes, cancel everything)
        self.last_sample: tuple[int, float] | None = None  # (ts, inventory) of the features
        self._last_fit_ns = 0
        self._last_cycle_ns = 0
        self._quoted_bid = 0
        self._quoted_ask = 0
        self._prepared: BackgroundSignal | None = None  # features sampled ahead of the cycle
        self._ahead: BackgroundSignal | None = None  # the signal the loop samples ahead for

    # --- events -------------------------------------------------------------------------
    def on_market_data(self, ts_ns: int) -> bool:
        """The book changed. True if it moved through one of our live quotes (requote now)."""
        self.risk.last_data_ns = ts_ns
        b = self.book
        mid2 = b.best_bid + b.best_ask
        if self.signal.uses_features:
            self.signal.observe(ts_ns, mid2 * 0.5)
        through = (self._quoted_bid and mid2 <= 2 * self._quoted_bid) or (
            self._quoted_ask and mid2 >= 2 * self._quoted_ask
        )
        return bool(through) and (
            ts_ns - self._last_cycle_ns >= self.params.requote_min_interval_s * 1e9
        )

    def on_trade(
        self, price: int, lots: int, aggressor: int, ts_ns: int, mid: float | None = None
    ) -> None:
        """A market print; ``mid`` is the book's mid when it printed (default: the mid now,
        which is the same thing when trades are fed as they arrive)."""
        if self.signal.uses_features:
            self.features.on_trade(ts_ns, price, lots, aggressor)
        self.intensity.on_trade(price, self.book.mid if mid is None else mid, ts_ns)

    def on_fill(self, fill: Fill) -> bool:
        """Apply a fill once; False for a duplicate (already applied)."""
        if not self.om.on_fill(fill):
            return False
        self.stats.fills += 1
        if fill.side > 0:
            self.stats.fills_buy += 1
        else:
            self.stats.fills_sell += 1
        self.risk.on_pnl(self.om.position.net_pnl(self.book.mid or fill.price))
        return True

    # --- control ------------------------------------------------------------------------
    def halt(self, reason: str, now_ns: int = 0) -> OrderBatch:
        """Kill switch: HALTED, and a batch cancelling every live order. Cancels that are
        not confirmed are sent again by later cycles, so nothing stays resting."""
        self.risk.halt(reason)
        self._quoted_bid = self._quoted_ask = 0
        return self.om.cancel_all(now_ns)

    def pull_quotes(self, now_ns: int = 0) -> OrderBatch:
        """Cancel everything without changing state (stale feed, shutdown); cancels older
        than the retry interval are sent again."""
        self._quoted_bid = self._quoted_ask = 0
        return self.om.cancel_all(now_ns, self.cancel_retry_ns)

    # --- the cycle ----------------------------------------------------------------------
    def prepare_signal(self, now_ns: int) -> bool:
        """Off the cycle, a little ahead of it (the live loop): sample the next cycle's
        features now and hand them to a background signal, whose thread infers while the
        loop waits; that cycle then quotes on the result if it is ready and fresh, without
        sampling again. Reactive cycles in between then take the latest result without a
        sample of their own (the window keeps the scheduled cadence). False (nothing done)
        for a signal that runs inline."""
        sig = self.signal
        submit = getattr(sig, "submit", None)
        if submit is None or not sig.uses_features:
            return False
        feats = self._sample(now_ns)
        submit(feats, now_ns, self.book.mid)
        self._prepared = self._ahead = cast(BackgroundSignal, sig)
        return True

    def _sample(self, now_ns: int) -> list[float]:
        mid = self.book.mid
        pos = self.om.position
        util = pos.notional(mid) / self.risk.limits.max_position_notional if mid else 0.0
        signed = util if pos.lots >= 0 else -util
        feats = self.features.sample(self.book, now_ns, signed)
        self.last_sample = (now_ns, signed)
        return feats

    def cycle(self, now_ns: int, reactive: bool = False) -> OrderBatch:
        """Compute this cycle's batch of cancels and places."""
        t = self.timers
        t0 = perf_counter_ns()
        book = self.book
        self._last_cycle_ns = now_ns
        st = self.stats
        st.cycles += 1
        if reactive:
            st.reactive_cycles += 1
        mid = book.mid
        pos = self.om.position
        limit = self.risk.limits.max_position_notional
        util = pos.notional(mid) / limit if mid else 0.0
        signal = self.signal
        prepared = self._prepared
        if prepared is not None:
            self._prepared = None
            if prepared is not signal:  # swapped since: this cycle samples for the new one
                prepared = None
        elif reactive and self._ahead is signal:
            prepared = self._ahead  # rows come from the scheduled cycles' samples only
        if prepared is not None or not signal.uses_features:
            feats = self.features.values
        else:
            signed = util if pos.lots >= 0 else -util
            feats = self.features.sample(book, now_ns, signed)
            self.last_sample = (now_ns, signed)
        sigma = self.vol.update(mid, now_ns) if mid else self.vol.sigma
        if now_ns - self._last_fit_ns >= 1_000_000_000:
            self.intensity.fit(now_ns)
            self._last_fit_ns = now_ns
        t1 = perf_counter_ns()
        t["features"].record(t1 - t0)

        if prepared is not None:  # sampled and submitted ahead: the latest fresh result
            direction, confidence = prepared.current(feats, now_ns, mid)
        else:
            direction, confidence = signal.predict(feats, now_ns, mid)
        self.last_signal = (direction, confidence)
        t2 = perf_counter_ns()
        t["model"].record(t2 - t1)

        risk = self.risk
        om = self.om
        if mid:
            risk.on_pnl(pos.net_pnl(mid))
            risk.on_volatility(sigma, now_ns)
        if not self.enabled or risk.gate(now_ns) is not None:
            quotes = []
        else:
            quotes = build_quotes(
                self.params,
                QuoteInputs(
                    book.best_bid,
                    book.best_ask,
                    mid,
                    sigma,
                    self.intensity.A,
                    self.intensity.k,
                    pos.lots,
                    util,
                    direction * self.adjustment.signal_scale,
                    confidence,
                    self.adjustment.spread_mult,
                ),
                self.instrument.notional_per_tick_lot,
            )
            if self.policy is not None and quotes:
                quotes = self.policy.quotes(
                    quotes,
                    book,
                    om.live,
                    direction * self.adjustment.signal_scale,
                    confidence,
                    util if pos.lots >= 0 else -util,
                    -float(self.instrument.maker_fee_bps) * 1e-4 * mid,
                )
            if risk.state is TradingState.REDUCING:
                quotes = reducing_only(quotes, pos.lots)
        t3 = perf_counter_ns()
        t["quoting"].record(t3 - t2)

        cancels, places = om.diff(quotes, self.params.keep_size_tolerance)
        cancels += om.unconfirmed_cancels(now_ns, self.cancel_retry_ns)
        batch = OrderBatch()
        for o in cancels:
            batch.cancels.append(om.mark_cancel(o, now_ns))
            risk.count_cancel(now_ns)
        t4 = perf_counter_ns()
        exp = om.exposure()
        bid = ask = 0
        for q in places:
            if risk.check_place(q.side, q.price, q.lots, exp, now_ns) is not None:
                continue
            o = om.new_order(q, now_ns)
            batch.places.append(om.to_place(o))
            if q.side > 0:
                st.placed_buy += 1
            else:
                st.placed_sell += 1
            exp = om.exposure()
        for o in om.live.values():
            if o.state is OrderState.PENDING_CANCEL:
                continue
            if o.side > 0 and o.price > bid:
                bid = o.price
            elif o.side < 0 and (ask == 0 or o.price < ask):
                ask = o.price
        self._quoted_bid, self._quoted_ask = bid, ask
        t5 = perf_counter_ns()
        t["risk"].record(t5 - t4)
        t["order_diff"].record(t4 - t3)
        t["cycle"].record(t5 - t0)
        st.quotes_sent += len(batch.places)
        st.cancels_sent += len(batch.cancels)
        if bid and ask:
            # "the market" is everyone else: our own orders do not count as its spread
            ob, oa = om.others_touch(book)
            if ob and oa:
                st.quoted_spread_sum += ask - bid
                st.market_spread_sum += oa - ob
                st.quoted_spread_n += 1
        return batch

    def status(self) -> dict[str, Any]:
        b = self.book
        pos = self.om.position
        mid = b.mid
        return {
            "symbol": self.instrument.symbol,
            "best_bid": b.best_bid,
            "best_ask": b.best_ask,
            "our_bid": self._quoted_bid,
            "our_ask": self._quoted_ask,
            "position_lots": pos.lots,
            "realized": pos.realized,
            "unrealized": pos.unrealized(mid) if mid else 0.0,
            "fees": pos.fees,
            "fills": self.stats.fills,
            "state": self.risk.state.value,
            "signal": self.last_signal,
            "sigma": self.vol.sigma,
            "A": self.intensity.A,
            "k": self.intensity.k,
            "cycle_p50_us": self.timers["cycle"].percentile(50) / 1000,
            "cycle_p99_us": self.timers["cycle"].percentile(99) / 1000,
            "to_venue_p99_us": self.timers["to_venue"].percentile(99) / 1000,
            "model": self.signal_figures(),
        }

    def signal_figures(self) -> dict[str, Any] | None:
        """The model signal's figures (None without one): cycles, cycles quoted on a fresh
        model result, the share after warm-up, the result's age (0 for an inline signal,
        which waits for it: its cycles count as live unless they fell back)."""
        sig = self.signal
        age = getattr(sig, "age", None)
        fallback = getattr(sig, "fallback_cycles", None)
        if age is None and fallback is None:
            return None
        n = getattr(sig, "cycles", self.stats.cycles)
        warmup = getattr(sig, "warmup_cycles", min(n, getattr(sig, "_seq", 1) - 1))
        live = getattr(sig, "live_cycles", n - (fallback or 0))
        return {
            "cycles": n,
            "warmup_cycles": warmup,
            "live_cycles": live,
            "stale_cycles": getattr(sig, "stale_cycles", 0),
            "reactive_cycles": self.stats.reactive_cycles,
            "live_share": live / (n - warmup) if n > warmup else None,
            "age_p50_ms": age.percentile(50) / 1e6 if age is not None else 0.0,
            "age_p99_ms": age.percentile(99) / 1e6 if age is not None else 0.0,
        }

    @property
    def quoted(self) -> tuple[int, int]:
        """Our innermost live bid and ask (0 where none)."""
        return self._quoted_bid, self._quoted_ask

    @property
    def trading_state(self) -> TradingState:
        return self.risk.state
