"""The simulated venue on the compiled event core, for the backtest.

``NativeVenueCore`` is ``SimVenueCore`` with the background market and the matcher in
compiled code (``native_core``): it advances natively until the next quote or sample time
or until the engine's requote test fires (after an event, an arrival of our batch or a
report reaching us), and hands over what happened since (market trades and reports, in
order). Python runs once per stop instead of once per event. Same seed, same results as
``SimVenueCore``: the random draws come from the same generator calls in the same order.
No L2 delta stream: the in-process venue keeps the Python core.
"""

from __future__ import annotations

import math
from itertools import count
from typing import Any

import numpy as np

from flashmm.book.l2 import L2Book
from flashmm.domain.instrument import Instrument
from flashmm.domain.orders import SIDES, Fill, Liquidity
from flashmm.sim import native_book as nb
from flashmm.sim import native_core as nc
from flashmm.sim import native_events as ne
from flashmm.sim.params import MarketParams, VenueParams
from flashmm.venue.base import OrderBatch

BATCH = 8192  # as flashmm.sim.rng: the same generator calls, so the same numbers
R_STOP, R_REACTIVE, R_ROOM = ne.R_STOP, ne.R_REACTIVE, ne.R_ROOM
# report kinds
ACK, REJ_INVALID, REJ_POST, CANCELLED, CANCEL_REJ, FILL = (
    ne.REP_ACK,
    ne.REP_REJ_INVALID,
    ne.REP_REJ_POST,
    ne.REP_CANCELLED,
    ne.REP_CANCEL_REJ,
    ne.REP_FILL,
)

TradeRow = list[int]  # price, lots, aggressor, best bid after, best ask after, ts_ns
Report = tuple[int, str, int, int, int, int, int, int, int, float, float]


class NativeBook(L2Book):
    """The engine's view of the native matcher's book. Best bid and ask are current at
    every stop; ``depth`` up to ``TOP`` levels reads the matcher; the level dicts are brought
    up to date on demand (deeper ``depth``, ``lots_at``, ``snapshot``, ``sync``) and at the
    end of a backtest, so read ``bids``/``asks`` directly only after ``sync()``."""

    __slots__ = ("_core", "_top")

    def __init__(self, core: NativeVenueCore) -> None:
        super().__init__()
        self._core = core
        self._top: tuple[list[tuple[int, int]], list[tuple[int, int]]] | None = None

    def sync(self) -> None:
        self._core.sync_levels()

    def depth(self, side: int, n: int) -> list[tuple[int, int]]:
        if n > nb.TOP:
            self.sync()
            return super().depth(side, n)
        top = self._top
        if top is None:
            top = self._top = self._core.top_levels()
        return top[0 if side > 0 else 1][:n]

    def lots_at(self, side: int, price: int) -> int:
        self.sync()
        return super().lots_at(side, price)

    def snapshot(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        self.sync()
        return super().snapshot()


class NativeVenueCore:
    """Background market + our order flow in compiled code, one clock (seconds)."""

    def __init__(
        self,
        instrument: Instrument,
        market: MarketParams,
        venue: VenueParams,
        requote_min_interval_s: float = 0.0,
        price_capacity: int = 0,
    ) -> None:
        """``price_capacity``: ticks the level arrays cover at first (0 = from the start
        price); they grow when the market gets near the top."""
        self.instrument = instrument
        self.vp = venue
        self.book = NativeBook(self)
        self._fill_no = count(1)
        self._tag_of: dict[str, int] = {}
        self._cids: list[str] = []
        self._gen = np.random.default_rng(market.seed)
        self._draw = (self._gen.random, self._gen.standard_normal, self._gen.standard_exponential)
        p = market
        ist = np.zeros(nb.N_IST, np.int64)
        fst = np.zeros(nb.N_FST, np.float64)
        s2 = p.size_dispersion**2
        limit_rate = p.limit_A / (1.0 - math.exp(-p.limit_k))
        const_rate = 2 * limit_rate + 2 * p.noise_market_rate + p.informed_rate + p.jump_rate
        for i, v in (
            (nb.F_VOL, p.fair_vol),
            (nb.F_JSIG, p.jump_sigma),
            (nb.F_LK, p.limit_k),
            (nb.F_AW, p.anchor_weight),
            (nb.F_CANCEL, p.cancel_rate),
            (nb.F_NMR, p.noise_market_rate),
            (nb.F_INF, p.informed_rate),
            (nb.F_EDGE, p.informed_edge),
            (nb.F_DISP, p.size_dispersion),
            (nb.F_MULIM, math.log(p.limit_size_mean) - s2 / 2),
            (nb.F_MUMKT, math.log(p.market_size_mean) - s2 / 2),
            (nb.F_LIMRATE, limit_rate),
            (nb.F_CONST, const_rate),
            (nb.F_RL, venue.report_latency_s),
            (nb.F_MININT, requote_min_interval_s * 1e9),
            (nb.F_FAIR, float(p.start_price)),
            (nb.F_PEND, p.warmup_s if p.warmup_s > 0 else -1.0),
            (nb.F_STOP, -math.inf),
        ):
            fst[i] = v
        # a generous bound on how far above the book one event can put a price
        margin = p.max_depth_ticks + 64 + int(16 * (p.jump_sigma + p.fair_vol))
        ist[nb.I_MARGIN] = margin
        ist[nb.I_MAXDEPTH] = p.max_depth_ticks
        ist[nb.I_START] = p.start_price
        ist[nb.I_NEXT_OID] = 1
        ist[nb.I_LASTTS] = -1
        cap = price_capacity or 1 << max(12, (2 * p.start_price + 4 * margin).bit_length())
        slots = 4096
        ist[nb.I_FREE] = 0
        ist[nb.I_NFREE] = slots
        self._ist = ist
        self._fst = fst
        self._rb = np.zeros((3, 2 * BATCH), np.float64)
        self._lev = nb.new_levels(cap)
        self._ordr = nb.new_orders(slots)
        self._noise = np.zeros((2, slots), np.int64)
        self._tags = np.zeros((1024, 2), np.int64)
        self._aq = np.zeros((1024, 6), np.int64)
        self._ab = np.zeros((256, 2), np.int64)
        self._abt = np.zeros(256, np.float64)
        self._trd = np.zeros((4 * ne.ROOM_ROWS, 6), np.int64)
        self._rep = np.zeros((4 * ne.ROOM_ROWS, 9), np.int64)
        self._rept = np.zeros((4 * ne.ROOM_ROWS, 2), np.float64)
        self._dirty = np.zeros((2 * cap, 3), np.int64)
        self._pack()
        self._head: list[int] = ist[: nb.I_TOP].tolist()
        self._abt_n = self._aqt_n = 0
        while self.advance(-math.inf) == R_ROOM:  # seed book and warm-up
            self.take_trades()
        self.take_trades()
        self.sync_levels()
        ist[nb.I_LASTTS] = -1

    def _pack(self) -> None:
        self._args = (
            self._ist,
            self._fst,
            self._rb,
            self._lev,
            self._ordr,
            self._noise,
            self._tags,
            self._aq,
            self._ab,
            self._abt,
            self._trd,
            self._rep,
            self._rept,
            self._dirty,
        )

    # --- state --------------------------------------------------------------------------
    @property
    def time(self) -> float:
        return float(self._fst[nb.F_TIME])

    @property
    def events(self) -> int:
        """Background events processed so far (warm-up included), as ``SimMarket.events``."""
        return int(self._ist[nb.I_EVENTS])

    @property
    def fair(self) -> float:
        return float(self._fst[nb.F_FAIR])

    @property
    def price_capacity(self) -> int:
        """Ticks the level arrays cover now."""
        return int(self._lev.shape[1])

    def take_last_event(self) -> tuple[int, float]:
        """(ns, s) of the last event the engine has not been told about; ns is -1 if none."""
        ts: int = self._head[nb.I_LASTTS]
        if ts < 0:
            return -1, 0.0
        self._ist[nb.I_LASTTS] = self._head[nb.I_LASTTS] = -1
        return ts, float(self._fst[nb.F_LASTT])

    def set_quoted(self, bid: int, ask: int, cycle_ns: int) -> None:
        """Our innermost quotes and last cycle time, for the native requote test."""
        self._ist[nb.I_QB : nb.I_LASTCYC + 1] = (bid, ask, cycle_ns)  # adjacent slots

    def run_until_later(self, t: float) -> None:
        """``SimMarket.run_until(t)``, applied at the start of the next ``advance``."""
        self._fst[nb.F_PEND] = t

    # --- the book -----------------------------------------------------------------------
    def sync_best(self) -> None:
        book = self.book
        book.best_bid = int(self._ist[nb.I_BB])
        book.best_ask = int(self._ist[nb.I_BA])

    def top_levels(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The best ``TOP`` levels of each side, best first, as (price, lots)."""
        v = self._ist[nb.I_TOP :].tolist()
        t = nb.TOP
        nbid, nask = v[4 * t], v[4 * t + 1]
        bids = list(zip(v[:nbid], v[t : t + nbid], strict=True))
        asks = list(zip(v[2 * t : 2 * t + nask], v[3 * t : 3 * t + nask], strict=True))
        return bids, asks

    def sync_levels(self) -> None:
        """Bring ``book`` up to the matcher's levels (only the ones changed since last)."""
        ist = self._ist
        n = int(ist[nb.I_NDIRTY])
        if n:
            bids = self.book.bids
            asks = self.book.asks
            for side, price, lots in self._dirty[:n].tolist():
                levels = bids if side > 0 else asks
                if lots:
                    levels[price] = lots
                else:
                    levels.pop(price, None)
            ist[nb.I_SYNCED] = 1
        self.sync_best()

    # --- orders -------------------------------------------------------------------------
    def _tag(self, cid: str) -> int:
        tag = self._tag_of.get(cid)
        if tag is None:
            tag = self._tag_of[cid] = len(self._cids)
            self._cids.append(cid)
            if tag >= len(self._tags):
                self._tags = _grown(self._tags, 2 * len(self._tags))
                self._pack()
        return tag

    def submit(self, batch: OrderBatch, now: float) -> None:
        """Our batch leaves now and reaches the matcher ``order_latency_s`` later."""
        tag_of = self._tag_of
        tag = self._tag
        rows = []
        for c in batch.cancels:
            t = tag_of.get(c.client_id)
            rows.append((ne.OP_CANCEL, tag(c.client_id) if t is None else t, 0, 0, 0, 0))
        top = 0
        post_only = self.vp.post_only
        for p in batch.places:
            t = tag_of.get(p.client_id)
            po = 1 if post_only or p.post_only else 0
            t = tag(p.client_id) if t is None else t
            rows.append((ne.OP_PLACE, t, int(p.side), p.price, p.lots, po))
            if p.price > top:
                top = p.price
        if top + 2 >= self._lev.shape[1]:
            self._grow_prices(top + 2)
        a, q = self._abt_n, self._aqt_n  # Python writes the queue's tail, native its head
        if self._head[nb.I_ABH] == a:  # drained (as of the last stop): start at the front
            a = q = 0
            self._ist[nb.I_ABH] = self._head[nb.I_ABH] = 0
        n = len(rows)
        if a >= len(self._ab) or q + n > len(self._aq):
            self._ab = _grown(self._ab, 2 * len(self._ab))
            self._abt = _grown(self._abt, 2 * len(self._abt))
            self._aq = _grown(self._aq, 2 * (len(self._aq) + n))
            self._pack()
        if n:
            self._aq[q : q + n] = rows
        self._ab[a] = (q, q + n)
        self._abt[a] = now + self.vp.order_latency_s
        self._abt_n = a + 1
        self._aqt_n = q + n
        self._ist[nb.I_ABT : nb.I_AQT + 1] = (a + 1, q + n)  # adjacent slots

    # --- running ------------------------------------------------------------------------
    def advance(self, stop_at: float) -> int:
        """Run natively until ``stop_at`` (a quote or sample time) or something the Python
        side must handle; then ``take_trades`` and ``take_reports`` hand over what
        happened."""
        fst = self._fst
        fst[nb.F_STOP] = stop_at
        while True:
            r = int(nc.advance(*self._args))
            if ne.R_NEED_U <= r <= ne.R_NEED_E:
                self._refill(r - ne.R_NEED_U)
                continue
            if r == R_ROOM:
                self._make_room()
            break
        head = self._head = self._ist[: nb.I_TOP].tolist()  # one read of the counters
        book = self.book
        book.best_bid = head[nb.I_BB]
        book.best_ask = head[nb.I_BA]
        book._top = None
        return r

    def _refill(self, s: int) -> None:
        ist = self._ist
        i, n = int(ist[nb.I_UI + s]), int(ist[nb.I_UL + s])
        row = self._rb[s]
        k = n - i
        row[:k] = row[i:n].copy()
        row[k : k + BATCH] = self._draw[s](BATCH)
        ist[nb.I_UI + s] = 0
        ist[nb.I_UL + s] = k + BATCH

    def _make_room(self) -> None:
        ist = self._ist
        if ist[nb.I_NFREE] < ne.ROOM_SLOTS + len(self._aq):
            old = self._ordr
            n = len(old)
            ordr = nb.new_orders(n, first_free=n)
            ordr[-1, nb.O_NEXT] = ist[nb.I_FREE]
            self._ordr = np.concatenate([old, ordr])
            self._noise = _grown(self._noise.T, 2 * n).T.copy()
            ist[nb.I_FREE] = n
            ist[nb.I_NFREE] += n
        hi = max(int(ist[nb.I_BB]), int(ist[nb.I_BA]), int(self.fair) + 1)
        self._grow_prices(hi + int(ist[nb.I_MARGIN]) + 1)
        self._pack()

    def _grow_prices(self, need: int) -> None:
        cap = self._lev.shape[1]
        if need < cap:
            return
        new = 1 << need.bit_length()
        lev = nb.new_levels(new)
        lev[:, :cap] = self._lev
        self._lev = lev
        self._dirty = _grown(self._dirty, 2 * new)
        self._pack()

    def take_reports(self) -> list[Report]:
        """Reports that reached us since the last call, in order: (kind, client id, a, b,
        price, lots, side, best bid, best ask, event time, due time). ``a`` is the venue id
        (ACK) or lots (CANCELLED), ``b`` the lots left (FILL); the touch is the book's at the
        due time."""
        head = self._head
        n: int = head[nb.I_RDLV]
        if not n:
            return []
        ist = self._ist
        total = int(ist[nb.I_NREP])
        rows = self._rep[:n].tolist()
        times = self._rept[:n].tolist()
        if total > n:  # not due yet: keep them, at the front
            self._rep[: total - n] = self._rep[n:total]
            self._rept[: total - n] = self._rept[n:total]
        ist[nb.I_NREP] = total - n
        ist[nb.I_RDLV] = head[nb.I_RDLV] = 0
        cids = self._cids
        return [
            (kind, cids[tag], a, b, price, lots, side, bb, ba, t, due)
            for (kind, tag, a, b, price, lots, side, bb, ba), (t, due) in zip(
                rows, times, strict=True
            )
        ]

    def fill(self, report: Report) -> Fill:
        """The ``Fill`` of a FILL report (fee from the instrument, maker liquidity)."""
        _, cid, _, _, price, lots, side, _, _, t, _ = report
        fee = self.instrument.fee(price, lots, maker=True)
        fid = f"sim-{next(self._fill_no)}"
        return Fill(fid, cid, SIDES[side], price, lots, fee, Liquidity.MAKER, int(t * 1e9))

    def take_trades(self) -> list[TradeRow]:
        """Market executions since the last call, in order: (price, lots, aggressor, best
        bid and best ask after the event, event time in ns)."""
        n: int = self._head[nb.I_NTRD]
        if not n:
            return []
        self._ist[nb.I_NTRD] = self._head[nb.I_NTRD] = 0
        rows: list[TradeRow] = self._trd[:n].tolist()
        return rows


def _grown(a: Any, n: int) -> Any:
    """``a`` with its first axis grown to ``n`` rows (zeros after the old ones)."""
    out = np.zeros((n, *a.shape[1:]), a.dtype)
    out[: len(a)] = a
    return out
