"""Feeds the stores from the hot path without ever waiting on them.

Every call here only queues: PostgreSQL records go to the durable writer (fills, order
states, risk state, position snapshots), Redis gets hot state and live events, the
time-series server gets a trading point per snapshot. ``snapshot`` runs about once a second
from the quote loop. Daily PnL and the live risk state are recorded by ``pnl``
(``hotpath/pnl_record.py``) from the same calls.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from flashmm.domain.orders import Fill, Order
from flashmm.domain.symbols import file_stem
from flashmm.stores.pg.writer import DurableWriter
from flashmm.stores.redis_state import RedisState
from flashmm.stores.timeseries import TimeSeriesWriter
from hotpath.engine import MarketMaker
from hotpath.pnl_record import PnlRecorder


@dataclass(slots=True)
class StoreSinks:
    pg: DurableWriter | None = None
    redis: RedisState | None = None
    ts: TimeSeriesWriter | None = None
    pnl: PnlRecorder = field(default_factory=PnlRecorder)

    def start(self) -> None:
        for s in (self.pg, self.redis, self.ts):
            if s is not None:
                s.start()

    async def close(self) -> None:
        for s in (self.pg, self.redis, self.ts):
            if s is not None:
                await s.close()

    # --- events -------------------------------------------------------------------------
    def fill(self, mm: MarketMaker, f: Fill) -> None:
        self.pnl.on_fill(mm, f)
        inst = mm.instrument
        price = str(inst.ticks_to_price(f.price))
        qty = str(inst.lots_to_size(f.lots))
        if self.pg is not None:
            self.pg.submit(
                {
                    "kind": "fill",
                    "fill_id": f.fill_id,
                    "client_id": f.client_id,
                    "market": inst.symbol,
                    "side": int(f.side),
                    "price": price,
                    "quantity": qty,
                    "fee": repr(f.fee),
                    "liquidity": f.liquidity.value,
                    "ts": time.time(),
                }
            )
        if self.redis is not None:
            self.redis.put_event(
                inst.symbol,
                "fill",
                {
                    "fill_id": f.fill_id,
                    "side": f.side.name.lower(),
                    "price": price,
                    "quantity": qty,
                    "fee": f.fee,
                    "liquidity": f.liquidity.value,
                },
            )

    def order(self, mm: MarketMaker, o: Order, reason: str = "") -> None:
        if self.pg is None:
            return
        inst = mm.instrument
        self.pg.submit(
            {
                "kind": "order",
                "client_id": o.client_id,
                "market": inst.symbol,
                "side": int(o.side),
                "price": str(inst.ticks_to_price(o.price)),
                "quantity": str(inst.lots_to_size(o.lots)),
                "state": o.state.value,
                "venue_id": o.venue_id,
                "reason": reason or o.reject_reason or None,
                "ts": time.time(),
            }
        )

    def risk(self, mm: MarketMaker) -> None:
        r = mm.risk_view()
        if self.pg is not None:
            self.pg.submit(
                {
                    "kind": "risk",
                    "market": mm.instrument.symbol,
                    "state": r.state.value,
                    "halted": r.state.value == "halted",
                    "reason": r.halt_reason,
                    "ts": time.time(),
                }
            )
        if self.redis is not None:
            self.redis.put_event(
                mm.instrument.symbol, "risk", {"state": r.state.value, "reason": r.halt_reason}
            )
        self.pnl.risk_changed(mm, self.redis)

    def final(self, mm: MarketMaker) -> None:
        """When the loop has stopped: the last risk state and daily PnL of this run."""
        self.pnl.final(mm, self.pg, self.redis)

    # --- about once a second ------------------------------------------------------------
    def snapshot(self, mm: MarketMaker) -> None:
        inst = mm.instrument
        sym = inst.symbol
        b = mm.book
        mid = b.mid
        pos = mm.position
        value = inst.notional_per_tick_lot
        now = time.time()
        net = pos.net_pnl(mid) if mid else pos.realized - pos.fees
        if self.redis is not None:
            self.redis.put_book(
                sym, b.seq, b.depth(1, 20), b.depth(-1, 20), inst.tick_size, inst.lot_size
            )
            cash = pos.realized - pos.fees - pos.avg_price * pos.lots * value
            self.redis.put_position(
                sym,
                pos.lots * inst.lot,
                cash,
                pos.notional(mid) * (1 if pos.lots >= 0 else -1) if mid else 0.0,
            )
            our_bid, our_ask = mm.quoted
            self.redis.put_event(
                sym,
                "quote",
                {
                    "bid": our_bid * inst.tick,
                    "ask": our_ask * inst.tick,
                    "best_bid": b.best_bid * inst.tick,
                    "best_ask": b.best_ask * inst.tick,
                },
            )
            self.redis.put_event(
                sym,
                "pnl",
                {
                    "net": net,
                    "realized": pos.realized,
                    "fees": pos.fees,
                    "position": pos.lots * inst.lot,
                },
            )
        if mid and self.pg is not None:
            self.pg.submit(
                {
                    "kind": "position",
                    "market": sym,
                    "ts": round(now, 3),
                    "position": str(inst.lots_to_size(pos.lots)),
                    "avg_price": repr(pos.avg_price * inst.tick),
                    "realized": repr(pos.realized),
                    "unrealized": repr(pos.unrealized(mid)),
                    "fees": repr(pos.fees),
                    "net_pnl": repr(net),
                }
            )
        outcomes = getattr(mm.signal, "outcomes", None)
        while outcomes:
            t0, horizon, predicted, realised = outcomes.popleft()
            if self.ts is not None:
                self.ts.prediction(
                    sym,
                    horizon,
                    predicted=predicted - 1,
                    realised=realised - 1,
                    confidence=0.0,
                    ts_ns=time.time_ns() - (time.monotonic_ns() - t0),
                )
            if self.redis is not None:
                self.redis.put_prediction(
                    sym,
                    {
                        "ts": t0,
                        "horizon": horizon,
                        "predicted": predicted - 1,
                        "realised": realised - 1,
                    },
                )
        if self.ts is not None and mid:
            self.ts.trading(
                sym,
                **_spreads(mm),
                fills=pos.fill_count,
                pnl=net,
                inventory=pos.lots * inst.lot,
                latency_us=mm.timers["cycle"].percentile(99) / 1000,
            )
        self.pnl.snapshot(mm, self.pg, self.redis)


def _spreads(mm: MarketMaker) -> dict[str, Any]:
    b = mm.book
    mid = b.mid
    tick = mm.instrument.tick
    mkt = b.spread * tick / (mid * tick) * 1e4 if mid else 0.0
    bid, ask = mm.quoted
    ours = (ask - bid) * tick / (mid * tick) * 1e4 if (bid and ask and mid) else mkt
    impr = (1 - ours / mkt) * 100 if mkt else 0.0
    return {"spread_bps": mkt, "our_spread_bps": ours, "improvement_pct": impr}


async def open_sinks(settings: Any, symbol: str) -> tuple[StoreSinks, str | None]:
    """Stores for one market's hot path, from settings. Returns (sinks, halted reason):
    the reason is set when PostgreSQL says this market was halted, so a restart comes back
    halted. Nothing here may stop the hot path from starting: a store that is down is
    logged and written to later."""
    import logging
    from pathlib import Path

    import asyncpg

    from flashmm.stores.pg.migrate import migrate

    log = logging.getLogger(__name__)
    st = settings.stores
    if not st.enabled:
        return StoreSinks(), None
    halted: str | None = None
    try:
        if st.migrate_on_start:
            await asyncio.wait_for(migrate(st.postgres_dsn), 10)
        conn = await asyncio.wait_for(asyncpg.connect(st.postgres_dsn), 5)
        try:
            row = await conn.fetchrow(
                "SELECT halted, reason FROM risk_state WHERE market = $1", symbol
            )
        finally:
            await conn.close()
        if row is not None and row["halted"]:
            halted = row["reason"] or "halted before restart"
    except (OSError, TimeoutError, asyncpg.PostgresError) as e:
        log.warning("PostgreSQL unavailable at start-up (%s); records will be journaled", e)
    sinks = StoreSinks(
        pg=DurableWriter(
            st.postgres_dsn,
            Path(st.journal_dir) / f"{file_stem(symbol)}.jsonl",
            memory_limit=st.writer_memory_limit,
        ),
        redis=RedisState(st.redis_url),
        ts=TimeSeriesWriter(
            st.timeseries_url, st.timeseries_org, st.timeseries_bucket, st.timeseries_token()
        ),
    )
    return sinks, halted
