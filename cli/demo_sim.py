"""``flashmm demo --sim``: paper-trade every configured market on the in-process simulator
(no network, no extra processes)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

from flashmm.config import Settings


def run_demo(
    settings: Settings, duration: float | None, seed: int | None, metrics_port: int = 0
) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(_demo(settings, duration, seed, metrics_port))
    else:
        uvloop.run(_demo(settings, duration, seed, metrics_port))
    return 0


async def _demo(
    settings: Settings, duration: float | None, seed: int | None, metrics_port: int
) -> None:
    from flashmm.sim.inprocess import InProcessVenue
    from hotpath.engine import MarketMaker
    from hotpath.loop import LoopConfig, QuoteLoop
    from hotpath.status import status_line

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loops: list[QuoteLoop] = []
    for i, m in enumerate(settings.markets):
        inst = m.instrument()
        start = inst.price_to_ticks(m.start_price)
        base_seed = settings.sim.market.get("seed", 7) if seed is None else seed
        params = settings.sim.market_params(seed=int(base_seed) + i, start_price=start)
        venue = InProcessVenue(inst, params, settings.sim.venue_params())
        mm = MarketMaker(
            inst, settings.quote_params(), settings.risk_limits(), order_prefix=f"demo{i}"
        )
        loops.append(QuoteLoop(mm, venue, LoopConfig(quote_hz=settings.hotpath.quote_hz)))
    if metrics_port:
        from prometheus_client import REGISTRY, start_http_server

        from hotpath.metrics import HotPathCollector

        REGISTRY.register(HotPathCollector(lambda: [ql.mm for ql in loops]))
        start_http_server(metrics_port, addr="127.0.0.1")
        print(f"metrics: http://127.0.0.1:{metrics_port}/metrics", flush=True)
    print(
        f"flashmm demo: {len(loops)} market(s) on the in-process simulated venue; Ctrl-C to stop",
        flush=True,
    )
    tasks = [asyncio.create_task(ql.run(stop)) for ql in loops]
    t0 = time.monotonic()
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.hotpath.status_interval_s)
            elapsed = time.monotonic() - t0
            for ql in loops:
                print(status_line(ql.mm.status(), ql.mm.instrument, elapsed), flush=True)
            if duration is not None and elapsed >= duration:
                stop.set()
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for ql in loops:
            await ql.venue.close()
    for ql in loops:
        pos = ql.mm.position
        print(
            f"{ql.mm.instrument.symbol}: stopped; fills {pos.fill_count}, "
            f"net PnL {pos.net_pnl(ql.mm.book.mid):+.4f} {ql.mm.instrument.quote}, "
            f"open orders left {ql.mm.open_order_count}"
        )
