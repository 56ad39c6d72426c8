"""What the owner of a ``MarketMaker`` calls besides the events and the cycle: the control
operations (start, stop, halt, resume, restore, reduce-only, new parameters, the daily
reset, pulling quotes) and the read-only ones (position, risk view, order counts, status).

``EngineOps`` is ``MarketMaker``'s base class: the engine's state is set up by
``MarketMaker.__init__`` (``hotpath/engine.py``); code outside these modules goes through
these operations, never the order manager (``om``) or the risk engine (``risk``) themselves.
"""

from __future__ import annotations

from typing import Any

from flashmm.book.l2 import L2Book
from flashmm.domain.instrument import Instrument
from flashmm.domain.market_state import Activity, MarketState
from flashmm.domain.market_state import activity as combined_activity
from flashmm.domain.orders import Order, OrderState
from flashmm.domain.position import Position
from flashmm.venue.base import OrderBatch
from hotpath.engine_types import CycleStats, RiskView, Signal
from hotpath.latency import StageTimers
from hotpath.orders import OrderManager
from hotpath.quoting.estimators import IntensityEstimator, VolEstimator
from hotpath.quoting.params import QuoteParams
from hotpath.risk import RiskEngine, RiskLimits, TradingState


class EngineOps:
    """The control and read operations of ``MarketMaker`` (which sets up this state)."""

    instrument: Instrument
    params: QuoteParams
    book: L2Book
    om: OrderManager
    risk: RiskEngine
    signal: Signal
    timers: StageTimers
    stats: CycleStats
    vol: VolEstimator
    intensity: IntensityEstimator
    cancel_retry_ns: int
    last_signal: tuple[float, float]
    enabled: bool  # False: stopped by the operator (no quotes, cancel everything)
    _quoted_bid: int
    _quoted_ask: int

    # --- control ------------------------------------------------------------------------
    def start(self) -> None:
        """Quote (the risk engine's own state still applies)."""
        self.enabled = True

    def stop(self) -> None:
        """No quotes; the next cycle's diff (or ``pull_quotes``) cancels the live ones."""
        self.enabled = False

    def halt(self, reason: str, now_ns: int = 0) -> OrderBatch:
        """Kill switch: HALTED, and a batch cancelling every live order. Cancels that are
        not confirmed are sent again by later cycles, so nothing stays resting."""
        self.risk.halt(reason)
        self._quoted_bid = self._quoted_ask = 0
        return self.om.cancel_all(now_ns)

    def resume(self) -> None:
        """Leave a halt (or reduce-only) and quote again."""
        self.risk.resume()
        self.enabled = True

    def restore(self, state: MarketState, reason: str) -> None:
        """At start-up, before quoting: enter the market state last persisted (a halted
        market comes back halted)."""
        self.enabled = state is MarketState.TRADING
        if state is MarketState.HALTED:
            self.risk.halt(reason)

    def reduce_only(self, reason: str) -> None:
        """Work the position off with reduce-only quotes (REDUCING until resumed)."""
        self.risk.reduce_only(reason)

    def set_params(
        self, params: QuoteParams | None = None, limits: RiskLimits | None = None
    ) -> None:
        """New quoting parameters and/or risk limits, from the next cycle on."""
        if params is not None:
            self.params = params
        if limits is not None:
            self.risk.limits = limits

    def daily_reset(self, rearm: bool) -> dict[str, Any]:
        """New risk day: snapshot, reset the daily loss counters and, with ``rearm``, re-arm
        the breakers that may re-arm (drawdown, daily loss)."""
        pos = self.om.position
        mid = self.book.mid
        pnl = pos.net_pnl(mid) if mid else pos.realized - pos.fees
        risk = self.risk
        snapshot = {
            "pnl_total": pnl,
            "pnl_day": pnl - risk.day_start_pnl,
            "fills": pos.fill_count,
            "position_lots": pos.lots,
            "state_before": risk.state.value,
            "reason_before": risk.halt_reason,
        }
        risk.daily_reset(pnl)
        rearmed = False
        if rearm and risk.halt_reason in ("max_drawdown", "daily_loss_limit"):
            risk.resume()
            rearmed = True
        return {**snapshot, "rearmed": rearmed, "state_after": risk.state.value}

    def pull_quotes(self, now_ns: int = 0) -> OrderBatch:
        """Cancel everything without changing state (stale feed, shutdown); cancels older
        than the retry interval are sent again."""
        self._quoted_bid = self._quoted_ask = 0
        return self.om.cancel_all(now_ns, self.cancel_retry_ns)

    # --- what the owner reads -----------------------------------------------------------
    @property
    def limits(self) -> RiskLimits:
        return self.risk.limits

    @property
    def position(self) -> Position:
        return self.om.position

    @property
    def halted(self) -> bool:
        return self.risk.state is TradingState.HALTED

    @property
    def open_order_count(self) -> int:
        return len(self.om.live)

    def risk_view(self) -> RiskView:
        """The risk side now, as a read-only copy: state, limits, the day's baseline, the
        denial counts, when the feed was last heard from."""
        r = self.risk
        return RiskView(
            r.state,
            r.halt_reason,
            self.enabled,
            r.limits,
            r.day_start_pnl,
            r.peak_pnl,
            r.last_data_ns,
            r.breaker_until_ns,
            dict(r.denials),
        )

    def order(self, client_id: str) -> Order | None:
        """A live order by client id (None once it is done)."""
        return self.om.live.get(client_id)

    def resting_touch(self) -> tuple[int, int]:
        """Our innermost bid and ask that rest in the venue's book (in-flight places do not
        count; 0 where none)."""
        bid = ask = 0
        for o in self.om.live.values():
            if o.state is OrderState.PENDING_NEW:
                continue  # still in flight: not in the book yet
            if o.side > 0:
                bid = max(bid, o.price)
            elif ask == 0 or o.price < ask:
                ask = o.price
        return bid, ask

    def position_notional_at(self, price: int) -> float:
        """|position| valued at ``price`` (USDC)."""
        return abs(self.om.position.lots) * price * self.om.lot_value

    def activity(self) -> Activity:
        """What this engine does: halted > stopped > reducing > trading."""
        return combined_activity(self.enabled, self.risk.state)

    def status(self) -> dict[str, Any]:
        """The engine's figures for the control API and the status line."""
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
            "halt_reason": self.risk.halt_reason,
            "enabled": self.enabled,
            "activity": self.activity().value,
            "open_orders": len(self.om.live),
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
