"""The market maker's synchronous core, shared by the live quote loop and the backtest.

Time is passed in (ns), never read here, so the same code runs against wall clock and
simulated clock. One ``cycle`` = features → model signal → quotes → risk → order diff, each
stage timed with ``perf_counter_ns`` into ``timers``. In the live loop a background signal's
features are sampled just ahead of the cycle (``prepare_signal``) and its model runs on its
own thread; the cycle only takes the latest fresh result, never waits for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from time import perf_counter_ns
from typing import cast

from flashmm.book.l2 import L2Book
from flashmm.config.quoting import QuotingPolicy
from flashmm.domain.instrument import Instrument
from flashmm.domain.orders import Fill, OrderState
from flashmm.ml.features import FeatureEngine
from flashmm.venue.base import (
    CancelRejected,
    Heartbeat,
    OpenOrder,
    OrderAccepted,
    OrderBatch,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    TradePrint,
    VenueEvent,
)
from hotpath.engine_ops import EngineOps
from hotpath.engine_types import (
    Adjustment,
    Applied,
    BackgroundSignal,
    CycleStats,
    NoSignal,
    RiskView,
    Signal,
    reducing_only,
)
from hotpath.latency import StageTimers
from hotpath.orders import OrderManager
from hotpath.quoting.estimators import IntensityEstimator, VolEstimator
from hotpath.quoting.params import QuoteParams
from hotpath.quoting.quoter import Quote, QuoteInputs, build_quotes
from hotpath.quoting.touch_policy import TouchPolicy, TouchPolicyConfig
from hotpath.risk import RiskEngine, RiskLimits, TradingState

__all__ = [
    "Adjustment",
    "Applied",
    "BackgroundSignal",
    "CycleStats",
    "MarketMaker",
    "NoSignal",
    "RiskView",
    "Signal",
    "reducing_only",
]

_NOTHING = Applied()


class MarketMaker(EngineOps):
    """Book in, batches out. The owner feeds events and calls ``cycle`` on its schedule; its
    control and read operations are ``EngineOps``'s (``hotpath/engine_ops.py``)."""

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
        # improve / join / stay behind the touch per side, on top of the model (None: off);
        # without an explicit one, the quoting parameters' ``policy`` setting decides
        if policy is None and quote_params.policy is QuotingPolicy.TOUCH:
            policy = TouchPolicyConfig()
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

    def on_data(self, ts_ns: int) -> None:
        """The feed is alive (a heartbeat, a resync, the start of a run) at ``ts_ns``."""
        self.risk.last_data_ns = ts_ns

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

    def on_accepted(self, client_id: str, venue_id: int) -> None:
        self.om.on_accepted(client_id, venue_id)

    def on_cancelled(self, client_id: str) -> None:
        """Cancelled, or a cancel refused because the order is gone: no longer open."""
        self.om.on_cancelled(client_id)

    def on_rejected(self, client_id: str, reason: str) -> None:
        self.om.on_rejected(client_id, reason)

    def apply(self, ev: VenueEvent, now_ns: int) -> Applied:
        """One venue event other than the book's (the owner's feed applies deltas and
        snapshots to the book, then calls ``on_market_data``). Returns what changed: the
        order whose record changed and a newly applied fill, for the owner's records."""
        live = self.om.live
        if isinstance(ev, OrderFilled):
            o = live.get(ev.fill.client_id)
            if not self.on_fill(ev.fill):
                return _NOTHING
            return Applied(o if o is not None and o.remaining <= 0 else None, ev.fill)
        if isinstance(ev, OrderAccepted):
            self.on_accepted(ev.client_id, ev.venue_id)
            return Applied(live.get(ev.client_id))
        if isinstance(ev, OrderCancelled | CancelRejected):
            o = live.get(ev.client_id)
            self.on_cancelled(ev.client_id)
            return Applied(o)
        if isinstance(ev, OrderRejected):
            o = live.get(ev.client_id)
            self.on_rejected(ev.client_id, ev.reason)
            return Applied(o, reason=ev.reason)
        if isinstance(ev, TradePrint):
            self.on_trade(ev.price, ev.lots, int(ev.aggressor), ev.ts_ns)
            return _NOTHING
        if isinstance(ev, Heartbeat):
            self.on_data(now_ns)
            return _NOTHING
        raise TypeError(f"unexpected venue event {type(ev).__name__}")

    def reconcile(
        self, open_orders: Iterable[OpenOrder], now_ns: int, pending_timeout_s: float = 5.0
    ) -> list[str]:
        """Align with the venue's open orders; returns the client ids of the orphans adopted
        (the next cycle's diff cancels them or keeps them as quotes)."""
        orphans, _ = self.om.reconcile(open_orders, now_ns, pending_timeout_s)
        return orphans

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
        """Compute this cycle's batch of cancels and places, stage by stage (each timed)."""
        t = self.timers
        t0 = perf_counter_ns()
        self._last_cycle_ns = now_ns
        st = self.stats
        st.cycles += 1
        if reactive:
            st.reactive_cycles += 1
        mid = self.book.mid
        pos = self.om.position
        util = pos.notional(mid) / self.risk.limits.max_position_notional if mid else 0.0
        prepared, feats, sigma = self._features(now_ns, reactive, mid, util)
        t1 = perf_counter_ns()
        t["features"].record(t1 - t0)
        direction, confidence = self._model(prepared, feats, now_ns, mid)
        t2 = perf_counter_ns()
        t["model"].record(t2 - t1)
        quotes = self._quotes(now_ns, mid, sigma, util, direction, confidence)
        t3 = perf_counter_ns()
        t["quoting"].record(t3 - t2)
        batch, places = self._diff(quotes, now_ns)
        t4 = perf_counter_ns()
        self._place(batch, places, now_ns)
        t5 = perf_counter_ns()
        t["risk"].record(t5 - t4)
        t["order_diff"].record(t4 - t3)
        t["cycle"].record(t5 - t0)
        self._account(batch)
        return batch

    def _features(
        self, now_ns: int, reactive: bool, mid: float, util: float
    ) -> tuple[BackgroundSignal | None, list[float], float]:
        """Stage 1: the feature row (sampled now, or ahead by ``prepare_signal``), volatility
        and, once a second, the fill intensity fit."""
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
            signed = util if self.om.position.lots >= 0 else -util
            feats = self.features.sample(self.book, now_ns, signed)
            self.last_sample = (now_ns, signed)
        sigma = self.vol.update(mid, now_ns) if mid else self.vol.sigma
        if now_ns - self._last_fit_ns >= 1_000_000_000:
            self.intensity.fit(now_ns)
            self._last_fit_ns = now_ns
        return prepared, feats, sigma

    def _model(
        self, prepared: BackgroundSignal | None, feats: list[float], now_ns: int, mid: float
    ) -> tuple[float, float]:
        """Stage 2: the model signal (the latest fresh background result, or inline)."""
        if prepared is not None:  # sampled and submitted ahead: the latest fresh result
            direction, confidence = prepared.current(feats, now_ns, mid)
        else:
            direction, confidence = self.signal.predict(feats, now_ns, mid)
        self.last_signal = (direction, confidence)
        return direction, confidence

    def _quotes(
        self,
        now_ns: int,
        mid: float,
        sigma: float,
        util: float,
        direction: float,
        confidence: float,
    ) -> list[Quote]:
        """Stage 3: the risk engine's PnL and volatility, its gate, then the quotes (the
        model, the touch policy, reduce-only)."""
        risk = self.risk
        pos = self.om.position
        if mid:
            risk.on_pnl(pos.net_pnl(mid))
            risk.on_volatility(sigma, now_ns)
        if not self.enabled or risk.gate(now_ns) is not None:
            return []
        book = self.book
        adj = self.adjustment
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
                direction * adj.signal_scale,
                confidence,
                adj.spread_mult,
            ),
            self.instrument.notional_per_tick_lot,
        )
        if self.policy is not None and quotes:
            quotes = self.policy.quotes(
                quotes,
                book,
                self.om.live,
                direction * adj.signal_scale,
                confidence,
                util if pos.lots >= 0 else -util,
                -float(self.instrument.maker_fee_bps) * 1e-4 * mid,
            )
        if risk.state is TradingState.REDUCING:
            quotes = reducing_only(quotes, pos.lots)
        return quotes

    def _diff(self, quotes: list[Quote], now_ns: int) -> tuple[OrderBatch, list[Quote]]:
        """Stage 4: what to cancel (incl. unconfirmed cancels again) and what to place."""
        om = self.om
        risk = self.risk
        cancels, places = om.diff(quotes, self.params.keep_size_tolerance)
        cancels += om.unconfirmed_cancels(now_ns, self.cancel_retry_ns)
        batch = OrderBatch()
        for o in cancels:
            batch.cancels.append(om.mark_cancel(o, now_ns))
            risk.count_cancel(now_ns)
        return batch, places

    def _place(self, batch: OrderBatch, places: list[Quote], now_ns: int) -> None:
        """Stage 5: each place through pre-trade risk; then our innermost live quotes."""
        om = self.om
        risk = self.risk
        st = self.stats
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

    def _account(self, batch: OrderBatch) -> None:
        """Stage 6 (untimed): the cycle's counts and, when two-sided, its spreads."""
        st = self.stats
        st.quotes_sent += len(batch.places)
        st.cancels_sent += len(batch.cancels)
        bid, ask = self._quoted_bid, self._quoted_ask
        if bid and ask:
            # "the market" is everyone else: our own orders do not count as its spread
            ob, oa = self.om.others_touch(self.book)
            if ob and oa:
                st.quoted_spread_sum += ask - bid
                st.market_spread_sum += oa - ob
                st.quoted_spread_n += 1
