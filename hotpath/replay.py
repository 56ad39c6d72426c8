"""Replay backtest: a recorded real market through the hot path's own ``MarketMaker``.

The compiled core (``flashmm.replay``) walks the recording natively; Python runs once per quote
cycle (and for a reactive requote when the book moves through our quote), with the quoting,
risk and order code unchanged from live. Assumptions, each a named option in
``ReplayConfig``: feed latency (constant or the recorded delay), order entry and response
latency (constant, each way), the queue-position model of our resting orders (hftbacktest's
risk-averse model or a power-law probabilistic one), fills never partial, maker/taker fees,
and **no market impact**: our orders and fills never change the recorded book.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from flashmm.domain.instrument import Instrument
from flashmm.domain.orders import Fill, Liquidity, Side
from flashmm.marketdata.store import EventStore
from flashmm.replay import native as nv
from flashmm.replay.book import ReplayBook
from flashmm.replay.core import ReplayCore, warm_up
from flashmm.replay.feed import prepare
from hotpath.backtest import BacktestResult, Series
from hotpath.engine import MarketMaker, Signal
from hotpath.quoting.params import QuoteParams
from hotpath.replay_summary import summarise
from hotpath.risk import RiskLimits

QUEUE_MODELS = ("risk-averse", "prob")
_QUOTES = ("USDT", "USDC", "BUSD", "USD", "EUR", "BTC", "ETH")


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    """How a recording is replayed. Times in ms, fees in basis points (negative = rebate)."""

    quote_hz: float = 5.0
    sample_every_s: float = 1.0
    latency_ms: float = 1.0  # order entry and response, each way
    feed_latency_ms: float | None = None  # None: the recorded local − exchange delay
    queue: str = "risk-averse"
    queue_power: float = 3.0  # the prob model: f(x) = x^n
    maker_fee_bps: float = 0.0
    taker_fee_bps: float = 0.0
    reactive: bool = True  # requote at once when the book moves through our quote
    quoting: QuoteParams = field(default_factory=QuoteParams)
    limits: RiskLimits = field(default_factory=RiskLimits)

    def __post_init__(self) -> None:
        if self.quote_hz <= 0:
            raise ValueError(f"quote_hz must be positive, got {self.quote_hz}")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, got {self.latency_ms}")
        if self.feed_latency_ms is not None and self.feed_latency_ms < 0:
            raise ValueError(f"feed_latency_ms must be >= 0, got {self.feed_latency_ms}")
        if self.queue not in QUEUE_MODELS:
            raise ValueError(f"queue must be one of {QUEUE_MODELS}, got {self.queue!r}")
        if self.queue_power <= 0:
            raise ValueError(f"queue_power must be positive, got {self.queue_power}")

    def assumptions(self) -> dict[str, Any]:
        """The named simulation assumptions, as the report states them."""
        return {
            "feed_latency": (
                "recorded" if self.feed_latency_ms is None else f"{self.feed_latency_ms:g} ms"
            ),
            "order_entry_latency_ms": self.latency_ms,
            "order_response_latency_ms": self.latency_ms,
            "queue_model": self.queue
            + (f" (power {self.queue_power:g})" if self.queue == "prob" else ""),
            "partial_fills": False,
            "market_impact": "none: our orders never change the recorded book",
            "maker_fee_bps": self.maker_fee_bps,
            "taker_fee_bps": self.taker_fee_bps,
            "post_only": True,
        }


def store_instrument(store: EventStore, maker_fee_bps: float, taker_fee_bps: float) -> Instrument:
    """The domain instrument of a store (base/quote split from the symbol where it can)."""
    sym = store.instrument.symbol.upper()
    quote = next((q for q in _QUOTES if sym.endswith(q) and len(sym) > len(q)), "USD")
    base = sym[: -len(quote)] if sym.endswith(quote) else sym
    return Instrument(
        symbol=sym,
        base=base,
        quote=quote,
        tick_size=Decimal(store.instrument.tick),
        lot_size=Decimal(store.instrument.lot),
        maker_fee_bps=Decimal(str(maker_fee_bps)),
        taker_fee_bps=Decimal(str(taker_fee_bps)),
    )


class ReplayBacktest:
    """Wires a ``MarketMaker`` to a ``ReplayCore`` over one store."""

    def __init__(self, store: EventStore, cfg: ReplayConfig, signal: Signal | None = None) -> None:
        self.store = store
        self.cfg = cfg
        self.instrument = store_instrument(store, cfg.maker_fee_bps, cfg.taker_fee_bps)
        feed = None if cfg.feed_latency_ms is None else int(cfg.feed_latency_ms * 1e6)
        self.arrays = prepare(store, feed)
        warm_up()
        lat = int(cfg.latency_ms * 1e6)
        track = signal is not None and signal.uses_features
        self.core = ReplayCore(self.arrays, lat, lat, cfg.queue, cfg.queue_power, track)
        self.book = ReplayBook(self.core)
        self.mm = MarketMaker(self.instrument, cfg.quoting, cfg.limits, self.book, signal)
        self.series = Series()
        self.fills: list[tuple[float, int, int, int]] = []
        self.max_abs_position_notional = 0.0
        self._cids: list[str] = []
        self._sides: list[int] = []
        self._handles: dict[str, int] = {}
        self._t0 = 0
        self.stops = 0

    def run(self) -> BacktestResult:
        cfg = self.cfg
        core = self.core
        period = int(1e9 / cfg.quote_hz)
        sample = int(cfg.sample_every_s * 1e9)
        t = self._t0 = core.first_local_ns
        next_quote = next_sample = t
        self.mm.on_data(t)
        wall0 = time.perf_counter()
        while True:
            target = min(next_quote, next_sample)
            reason = core.advance(target)
            self.stops += 1
            now = core.now_ns
            self._drain(target if reason == nv.STOP_TIME else now)
            if reason == nv.STOP_END:
                break
            if reason == nv.STOP_FULL:
                continue
            if reason == nv.STOP_REACT:
                self._cycle(now, reactive=True)
                continue
            if next_sample <= next_quote:
                self._sample(next_sample)
                next_sample += sample
                continue
            self._cycle(next_quote, reactive=False)
            next_quote += period
        wall = time.perf_counter() - wall0
        summary = summarise(self, wall)
        return BacktestResult(summary, self.series, self.fills)

    # --- per stop -----------------------------------------------------------------------
    def _drain(self, now: int) -> None:
        mm = self.mm
        cids = self._cids
        for ts, kind, h, price, lots in core_rows(self.core.take_responses(now)):
            cid = cids[h]
            if kind == nv.FILL:
                side = Side(self._sides[h])
                fee = self.instrument.fee(price, lots, maker=True)
                fill = Fill(f"replay-{len(self.fills) + 1}", cid, side, price, lots, fee,
                            Liquidity.MAKER, ts)  # fmt: skip
                mm.on_fill(fill)
                self.fills.append(((ts - self._t0) / 1e9, int(side), price, lots))
                n = mm.position_notional_at(price)
                if n > self.max_abs_position_notional:
                    self.max_abs_position_notional = n
            elif kind == nv.ACK:
                mm.on_accepted(cid, h)
            elif kind == nv.REJECT:
                mm.on_rejected(cid, "post-only order would cross")
            else:  # CANCELLED or CANCEL_REJECT: either way the order is no longer open
                mm.on_cancelled(cid)
        for ts, price, lots, aggressor, mid2 in core_rows(self.core.take_trades()):
            mm.on_trade(price, lots, aggressor, ts, mid2 * 0.5 if mid2 else None)
        if self.core.S[nv.TRACK_MID]:
            sig = mm.signal
            for ts, mid2 in core_rows(self.core.take_mids()):
                sig.observe(ts, mid2 * 0.5)
        self.book.refresh()
        last = self.core.last_data_ns
        if last:
            mm.on_data(last)

    def _cycle(self, t: int, reactive: bool) -> None:
        mm = self.mm
        core = self.core
        batch = mm.cycle(t, reactive=reactive)
        handles = self._handles
        for c in batch.cancels:
            h = handles.get(c.client_id)
            if h is not None:
                core.cancel(h, t)
        for p in batch.places:
            h = len(self._cids)
            self._cids.append(p.client_id)
            self._sides.append(int(p.side))
            handles[p.client_id] = h
            core.place(h, int(p.side), p.price, p.lots, t)
        if self.cfg.reactive:
            bid, ask = mm.quoted
            core.set_quoted(bid, ask, t, int(mm.params.requote_min_interval_s * 1e9))

    def _sample(self, t: int) -> None:
        s = self.series
        b = self.book
        mid = b.mid
        pos = self.mm.position
        our_bid, our_ask = self.mm.quoted
        s.t.append((t - self._t0) / 1e9)
        s.mid.append(mid)
        s.best_bid.append(b.best_bid)
        s.best_ask.append(b.best_ask)
        s.our_bid.append(our_bid)
        s.our_ask.append(our_ask)
        s.position.append(pos.lots)
        s.equity.append(pos.net_pnl(mid) if mid else 0.0)


def core_rows(a: Any) -> list[Any]:
    """Rows of an int64 output array as lists of Python ints (fast to unpack)."""
    rows: list[Any] = a.tolist()
    return rows


def run_replay(
    store: EventStore, cfg: ReplayConfig, signal: Signal | None = None
) -> BacktestResult:
    """Replay one store; the same store and config give the same result."""
    return ReplayBacktest(store, cfg, signal).run()
