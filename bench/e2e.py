"""Market data to broadcast on loopback: from a book event's frame arriving at the feed to
the signed transaction accepted by the localnet (block wait excluded: BROADCAST_MODE_SYNC
answers after CheckTx). The localnet runs as its own process, as in production."""

from __future__ import annotations

import asyncio
import time

from bench.localnet import start_localnet
from flashmm.config import load_settings
from flashmm.venue.base import BookDelta, BookSnapshot, Heartbeat
from flashmm.venue.factory import make_venue
from hotpath.book import FeedBook
from hotpath.engine import MarketMaker
from hotpath.loop import QuoteLoop


async def _measure(seconds: float) -> list[int]:
    node, ready = await start_localnet()
    try:
        s = load_settings(venue={"rest_urls": [ready["rest"]], "ws_urls": [ready["rpc"]]})
        symbol = s.markets[0].symbol
        venue = make_venue(s, symbol)
        mm = MarketMaker(
            s.market(symbol).instrument(),
            s.quote_params(),
            s.risk_limits(),
            order_prefix=f"bench-{int(time.time())}",
        )
        ql = QuoteLoop(mm, venue)  # used only to dispatch order events
        feed = FeedBook(mm.book)
        await venue.connect()
        feed.apply_snapshot(await venue.snapshot())
        samples: list[int] = []
        end = time.monotonic() + seconds
        events = venue.events()
        while time.monotonic() < end:
            ev = await asyncio.wait_for(events.__anext__(), 5)
            if isinstance(ev, BookDelta):
                if not feed.apply_delta(ev):
                    feed.apply_snapshot(await venue.snapshot())
                    continue
                mm.on_market_data(time.monotonic_ns())
                batch = mm.cycle(time.monotonic_ns())  # every book event drives a cycle
                if batch:
                    await venue.submit(batch)  # returns once the localnet accepted it
                    samples.append(time.monotonic_ns() - ev.ts_ns)
            elif isinstance(ev, BookSnapshot):
                feed.apply_snapshot(ev)
            elif isinstance(ev, Heartbeat):
                mm.on_data(time.monotonic_ns())
            else:
                ql._dispatch(ev)
        await venue.submit(mm.pull_quotes(time.monotonic_ns()))
        await venue.close()
        return samples
    finally:
        node.terminate()
        await node.wait()


def bench_e2e(seconds: float = 20.0) -> dict[str, float]:
    samples = sorted(asyncio.run(_measure(seconds)))

    def pct(q: float) -> float:
        return samples[min(len(samples) - 1, round(q / 100 * (len(samples) - 1)))] / 1e6

    return {
        "e2e.feed_to_broadcast_p50_ms": pct(50),
        "e2e.feed_to_broadcast_p99_ms": pct(99),
        "e2e.broadcasts": float(len(samples)),
    }
