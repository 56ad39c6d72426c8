"""``ReplayCore``: the compiled core's arrays behind a small Python API for the driver.

The driver asks it to ``advance`` to a time, takes what happened (responses to our orders,
market trades, mid changes) as arrays, reads the local book, and hands it our new orders and
cancels. Everything here is O(1) or O(our orders) per call; the per-event work is native.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from flashmm.replay import native as nv
from flashmm.replay.feed import ReplayArrays

I64 = npt.NDArray[np.int64]


class OrderSlotsFullError(RuntimeError):
    """More of our orders in flight than the core has slots for (``N_SLOTS``)."""


class ReplayCore:
    """One replay's state: both books, our orders at the exchange, output buffers."""

    def __init__(
        self,
        arrays: ReplayArrays,
        order_latency_ns: int,
        response_latency_ns: int,
        queue_model: str = "risk-averse",
        queue_power: float = 3.0,
        track_mids: bool = False,
        buffer: int = 1 << 14,
    ) -> None:
        if order_latency_ns < 0 or response_latency_ns < 0:
            raise ValueError("latencies must be >= 0")
        if queue_model not in ("risk-averse", "prob"):
            raise ValueError(f"queue model must be risk-averse or prob, got {queue_model!r}")
        self.a = arrays
        self.order_latency_ns = order_latency_ns
        n = len(arrays.px)
        self.ex_bid = np.zeros(n, np.int64)
        self.ex_ask = np.zeros(n, np.int64)
        self.loc_bid = np.zeros(n, np.int64)
        self.loc_ask = np.zeros(n, np.int64)
        S = np.zeros(nv.N_STATE, np.int64)
        S[nv.EX_BB] = S[nv.LOC_BB] = -1
        S[nv.EX_BA] = S[nv.LOC_BA] = n
        S[nv.NEXT_ORDER] = nv.NEVER
        S[nv.QUEUE] = nv.PROB if queue_model == "prob" else nv.RISK_AVERSE
        S[nv.RESP_LAT] = response_latency_ns
        S[nv.TRACK_MID] = int(track_mids)
        self.S = S
        self.F = np.zeros(nv.N_PARAMS, np.float64)
        self.F[nv.F_POWER] = queue_power
        self.orders = np.zeros((nv.N_SLOTS, 8), np.int64)
        self.queue = np.zeros((nv.N_SLOTS, 2), np.float64)
        self.resp = np.zeros((buffer + 2 * nv.N_SLOTS, 5), np.int64)
        self.trades = np.zeros((buffer, 5), np.int64)
        self.mids = np.zeros((buffer, 2), np.int64)

    # --- time ---------------------------------------------------------------------------
    def advance(self, until_ns: int) -> int:
        """Run to ``until_ns`` or the first earlier stop; returns ``native.STOP_*``."""
        a = self.a
        return int(
            nv.advance(
                self.S, self.F, until_ns,
                a.exch, a.local, a.kind, a.side, a.rank, a.qty, a.loc_order, a.px,
                self.ex_bid, self.ex_ask, self.loc_bid, self.loc_ask,
                self.orders, self.queue, self.resp, self.trades, self.mids,
            )
        )  # fmt: skip

    @property
    def now_ns(self) -> int:
        return int(self.S[nv.NOW])

    @property
    def first_local_ns(self) -> int:
        a = self.a
        return int(a.local[a.loc_order[0]]) if a.events else 0

    @property
    def last_data_ns(self) -> int:
        return int(self.S[nv.LAST_DATA])

    def set_quoted(self, bid: int, ask: int, cycle_ns: int, min_gap_ns: int) -> None:
        """Our innermost quotes and the last cycle time, for the reactive-requote stop."""
        S = self.S
        S[nv.Q_BID] = bid
        S[nv.Q_ASK] = ask
        S[nv.LAST_CYCLE] = cycle_ns
        S[nv.MIN_GAP] = min_gap_ns

    # --- outputs ------------------------------------------------------------------------
    def take_responses(self, now_ns: int) -> I64:
        """Responses that have reached us by ``now_ns``, oldest first (rows: ``R_*``)."""
        n = int(self.S[nv.N_RESP])
        if n == 0:
            return self.resp[:0]
        k = int(np.searchsorted(self.resp[:n, nv.R_TS], now_ns, side="right"))
        out = self.resp[:k].copy()
        if k:
            self.resp[: n - k] = self.resp[k:n]
            self.S[nv.N_RESP] = n - k
        return out

    def take_trades(self) -> I64:
        """Market trades seen locally since the last call: (ts, price, lots, aggressor, mid×2)."""
        n = int(self.S[nv.N_TRADES])
        self.S[nv.N_TRADES] = 0
        return self.trades[:n].copy()

    def take_mids(self) -> I64:
        """Local mid changes since the last call: (ts, mid×2), when ``track_mids``."""
        n = int(self.S[nv.N_MIDS])
        self.S[nv.N_MIDS] = 0
        return self.mids[:n].copy()

    # --- the local book -----------------------------------------------------------------
    def best(self) -> tuple[int, int]:
        """Local best bid and ask prices in ticks (0 where a side is empty)."""
        S, px = self.S, self.a.px
        bb, ba = int(S[nv.LOC_BB]), int(S[nv.LOC_BA])
        return (int(px[bb]) if bb >= 0 else 0, int(px[ba]) if ba < len(px) else 0)

    def exchange_best(self) -> tuple[int, int]:
        """The exchange's best bid and ask in ticks now (what our orders meet; the local book
        shows it a feed latency later)."""
        S, px = self.S, self.a.px
        bb, ba = int(S[nv.EX_BB]), int(S[nv.EX_BA])
        return (int(px[bb]) if bb >= 0 else 0, int(px[ba]) if ba < len(px) else 0)

    def depth(self, side: int, n: int) -> list[tuple[int, int]]:
        if side > 0:
            rows = nv.top_levels(self.a.px, self.loc_bid, int(self.S[nv.LOC_BB]), 1, n)
        else:
            rows = nv.top_levels(self.a.px, self.loc_ask, int(self.S[nv.LOC_BA]), -1, n)
        out: list[tuple[int, int]] = list(map(tuple, rows.tolist()))
        return out

    # --- our orders ---------------------------------------------------------------------
    def place(self, handle: int, side: int, price: int, lots: int, now_ns: int) -> None:
        arrive = now_ns + self.order_latency_ns
        if not nv.submit_place(self.S, self.orders, handle, side, price, lots, arrive):
            raise OrderSlotsFullError(f"more than {nv.N_SLOTS} orders in flight")

    def cancel(self, handle: int, now_ns: int) -> None:
        if not nv.submit_cancel(self.S, self.orders, handle, now_ns + self.order_latency_ns):
            raise OrderSlotsFullError(f"more than {nv.N_SLOTS} orders in flight")

    # --- figures ------------------------------------------------------------------------
    @property
    def exchange_events(self) -> int:
        return int(self.S[nv.EX_EVENTS])

    @property
    def crossed_events(self) -> int:
        return int(self.S[nv.CROSSED])

    @property
    def fills_by_queue(self) -> int:
        """Our fills by a trade at our price once the queue ahead was used up."""
        return int(self.S[nv.FILLS_QUEUE])

    @property
    def fills_by_cross(self) -> int:
        """Our fills by a trade, or the opposite best, moving through our price."""
        return int(self.S[nv.FILLS_CROSS])

    @property
    def gaps(self) -> int:
        return int(self.S[nv.GAPS])


def warm_up() -> None:
    """Load (or compile, the first time on a machine) every native function, so a timed run
    measures replay, not the JIT."""
    from flashmm.replay.feed import ReplayArrays

    one = np.zeros(1, np.int64)
    arrays = ReplayArrays(one, one, one, one, one, one, one, one + 1, 0)
    core = ReplayCore(arrays, 0, 0)
    core.place(0, 1, 1, 1, 0)
    core.cancel(0, 0)
    core.advance(-1)
    core.depth(1, 1)
