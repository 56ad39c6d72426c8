"""A real hot path with its stores for tests: a quote loop on the in-process simulated venue,
its local control API, and the store writers (PostgreSQL durable writer and/or Redis) as
``open_sinks`` wires them, with the daily-PnL cadence shortened."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from flashmm.domain.instrument import SEI_USDC
from flashmm.sim.inprocess import InProcessVenue
from flashmm.sim.params import MarketParams
from flashmm.stores.pg.writer import DurableWriter
from flashmm.stores.redis_state import RedisState
from hotpath.control import ControlServer
from hotpath.control_state import ControlState
from hotpath.engine import MarketMaker
from hotpath.loop import LoopConfig, QuoteLoop
from hotpath.pnl_record import PnlRecorder
from hotpath.quoting.params import QuoteParams
from hotpath.risk import RiskLimits
from hotpath.sinks import StoreSinks

TOKEN = "t" * 32


@dataclass
class HotPath:
    loop: QuoteLoop
    venue: InProcessVenue
    sinks: StoreSinks
    control: ControlServer
    url: str

    @property
    def mm(self) -> MarketMaker:
        return self.loop.mm


@asynccontextmanager
async def hot_path_with_stores(
    tmp: Path,
    pg_dsn: str | None = None,
    redis_url: str | None = None,
    initial: str = "trading",
    pnl_every_s: float = 1.0,
    seed: int = 4,
    run: str | None = None,
) -> AsyncIterator[HotPath]:
    """Started and quoting; stopped (orders cancelled, stores flushed) on exit."""
    venue = InProcessVenue(SEI_USDC, MarketParams(seed=seed, warmup_s=5))
    mm = MarketMaker(SEI_USDC, QuoteParams(), RiskLimits())
    sinks = StoreSinks(
        pg=DurableWriter(pg_dsn, tmp / f"journal-{seed}.jsonl", name=f"pg-{seed}")
        if pg_dsn
        else None,
        redis=RedisState(redis_url, name=f"redis-{seed}") if redis_url else None,
        pnl=PnlRecorder(pnl_every_s=pnl_every_s, run=run),
    )
    sinks.start()
    ql = QuoteLoop(
        mm,
        venue,
        LoopConfig(quote_hz=20, shutdown_timeout_s=1.0, snapshot_every_s=0.2),
        sinks=sinks,
    )
    state_file = tmp / f"control-{seed}.json"
    control = ControlServer(ql, state_file, TOKEN)
    if not state_file.exists():
        control.state = ControlState(state=initial)
    control.apply_persisted()
    await control.start()
    stop = asyncio.Event()
    task = asyncio.create_task(ql.run(stop))
    try:
        yield HotPath(ql, venue, sinks, control, f"http://127.0.0.1:{control.port}")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await control.stop()
        await venue.close()
        await sinks.close()
