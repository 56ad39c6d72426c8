"""Daily PnL and live risk state, recorded from the hot path as it trades.

``StoreSinks`` calls this off the quote cycle, like its other writers: ``on_fill`` for each
fill (it adds the fill's quote volume), ``risk_changed`` at once when the risk state
changes, ``snapshot`` about once a second and ``final`` when the loop stops. Everything here
only queues (the durable writer, the Redis writer) and returns.

* **Risk state** (Redis ``risk:{symbol}``, every snapshot, from the first one): the hot
  path's own trading state and since when, the risk engine's state and reason, position and
  position-limit use, the risk day's PnL and loss against its limit, drawdown, the
  volatility breaker and stale data. This is what the API shows as a market's state.
* **Daily PnL** (PostgreSQL ``daily_pnl``, one row per market and UTC day): upserted every
  ``pnl_every_s`` seconds, when the UTC day turns and on stop. Figures are the day's, for
  this run of the hot path: realized, fees, fills and volume (quote currency, e.g. USDC)
  since the day began (or the run started); ``net_pnl`` is the change in marked-to-market
  equity (realized + change in unrealized - fees), ``unrealized`` that change in the open
  position's value. A restarted hot path starts from zero and adds its own run to the day:
  each run's figures are kept under ``details.runs.<run>`` and the columns are their sum
  (``flashmm/stores/pg/records.py``).

The hot path's state, one word, by this rule (what it does, not what it was asked):
``halted`` when its risk engine is halted, else ``stopped`` when it is not enabled (an
operator's stop, or not started yet), else ``reducing`` (reduce-only), else ``trading``.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flashmm.domain.orders import Fill
from flashmm.stores.pg.writer import DurableWriter
from flashmm.stores.redis_state import RedisState

if TYPE_CHECKING:
    from hotpath.engine import MarketMaker

PNL_EVERY_S = 5.0


def new_run_id() -> str:
    """One id per hot-path run: host, process id and start time (ms)."""
    host = "".join(ch if ch.isalnum() else "-" for ch in socket.gethostname())[:40]
    return f"{host}-{os.getpid()}-{int(time.time() * 1000)}"


@dataclass(slots=True)
class _Totals:
    """A run's cumulative figures at one moment."""

    realized: float = 0.0
    fees: float = 0.0
    net: float = 0.0
    fills: int = 0
    volume: float = 0.0  # quote currency
    volume_lots: int = 0


class PnlRecorder:
    def __init__(
        self,
        pnl_every_s: float = PNL_EVERY_S,
        run: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pnl_every_s = pnl_every_s
        self.run = run or new_run_id()
        self.clock = clock
        self._volume = 0.0  # this run's traded quote volume
        self._day = ""  # the UTC day the baseline belongs to
        self._base = _Totals()  # the run's figures when that day began (zero: run start)
        self._next_pnl = 0.0
        self._state = ""
        self._since = 0.0
        self.pnl_records = 0
        self.risk_writes = 0

    # --- hooks (StoreSinks) -------------------------------------------------------------
    def on_fill(self, mm: MarketMaker, f: Fill) -> None:
        self._volume += f.price * f.lots * mm.instrument.notional_per_tick_lot

    def risk_changed(self, mm: MarketMaker, redis: RedisState | None) -> None:
        """The risk state changed: publish it now, not at the next snapshot."""
        if redis is not None:
            redis.put_risk(mm.instrument.symbol, self.risk_fields(mm))
            self.risk_writes += 1

    def snapshot(self, mm: MarketMaker, pg: DurableWriter | None, redis: RedisState | None) -> None:
        """About once a second: the risk state always, the day's PnL at its cadence."""
        if pg is None and redis is None:
            return
        self.risk_changed(mm, redis)
        if pg is not None and (self.clock() >= self._next_pnl or self._today() != self._day):
            self.record_pnl(mm, pg)

    def final(self, mm: MarketMaker, pg: DurableWriter | None, redis: RedisState | None) -> None:
        """On stop: the last figures of this run."""
        self.risk_changed(mm, redis)
        if pg is not None:
            self.record_pnl(mm, pg)

    # --- daily PnL ----------------------------------------------------------------------
    def _today(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%d")

    def _totals(self, mm: MarketMaker) -> tuple[_Totals, float, float]:
        """(cumulative figures, unrealized now, mark) of this run."""
        pos = mm.position
        mid = mm.book.mid
        unreal = pos.unrealized(mid) if mid else 0.0
        t = _Totals(
            pos.realized,
            pos.fees,
            pos.realized + unreal - pos.fees,
            pos.fill_count,
            self._volume,
            pos.volume_lots,
        )
        return t, unreal, float(mid or 0.0)

    def record_pnl(self, mm: MarketMaker, pg: DurableWriter) -> None:
        now = self.clock()
        today = self._today()
        cum, _, mark = self._totals(mm)
        if self._day and today != self._day:
            # the day turned since the last record: close the old day with what we have
            pg.submit(self._record(mm, self._day, cum, mark, now))
            self._base = cum
        self._day = today
        pg.submit(self._record(mm, today, cum, mark, now))
        self.pnl_records += 1
        self._next_pnl = now + self.pnl_every_s

    def _record(
        self, mm: MarketMaker, day: str, cum: _Totals, mark: float, now: float
    ) -> dict[str, Any]:
        inst = mm.instrument
        b = self._base
        realized = cum.realized - b.realized
        fees = cum.fees - b.fees
        net = cum.net - b.net
        figures = {
            "ts": round(now, 6),
            "net_pnl": net,
            "realized": realized,
            "unrealized": net - realized + fees,
            "fees": fees,
            "fills": cum.fills - b.fills,
            "volume": cum.volume - b.volume,
            "volume_base": str(inst.lots_to_size(cum.volume_lots - b.volume_lots)),
            "position": str(inst.lots_to_size(mm.position.lots)),
            "mark": mark * inst.tick if mark else None,
        }
        return {
            "kind": "daily_pnl",
            "market": inst.symbol,
            "day": day,
            "net_pnl": repr(figures["net_pnl"]),
            "fills": figures["fills"],
            "volume": repr(figures["volume"]),
            "run": self.run,
            "figures": json.dumps(figures, separators=(",", ":")),
        }

    # --- risk state ---------------------------------------------------------------------
    def risk_fields(self, mm: MarketMaker) -> dict[str, str]:
        """The live risk state as Redis hash fields (text)."""
        now = self.clock()
        risk = mm.risk_view()
        state = risk.activity.value
        if state != self._state:
            self._state, self._since = state, now
        inst = mm.instrument
        lim = risk.limits
        pos = mm.position
        mid = mm.book.mid
        net = pos.net_pnl(mid) if mid else pos.realized - pos.fees
        notional = pos.notional(mid) if mid else 0.0
        day_pnl = net - risk.day_start_pnl
        loss = max(0.0, -day_pnl)
        peak = risk.peak_pnl
        mono = time.monotonic_ns()
        until_ns = risk.breaker_until_ns
        tripped = risk.breaker_tripped(mono)
        return {
            "state": state,
            "since": f"{self._since:.3f}",
            "risk_state": risk.state.value,
            "reason": risk.halt_reason,
            "enabled": "1" if risk.enabled else "0",
            "position_lots": str(pos.lots),
            "position": str(inst.lots_to_size(pos.lots)),
            "position_notional": f"{notional:.6f}",
            "position_limit": repr(float(lim.max_position_notional)),
            "position_limit_use": f"{notional / lim.max_position_notional:.6f}",
            "open_orders": str(mm.open_order_count),
            "daily_pnl": f"{day_pnl:.6f}",
            "daily_loss": f"{loss:.6f}",
            "daily_loss_limit": repr(float(lim.daily_loss_limit)),
            "daily_loss_use": f"{loss / lim.daily_loss_limit:.6f}",
            "drawdown": f"{max(0.0, peak - net):.6f}",
            "max_drawdown": repr(float(lim.max_drawdown)),
            "breaker": "tripped" if tripped else "armed",
            "breaker_for_s": f"{max(0, until_ns - mono) / 1e9:.3f}" if tripped else "0",
            "stale_data": "1" if risk.last_data_ns and risk.stale(mono) else "0",
            "run": self.run,
            "updated_at": f"{now:.3f}",
        }
