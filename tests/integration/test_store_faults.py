"""Store outages under live trading: the hot path (``QuoteLoop`` + the real Sei adapter
against an in-process localnet) keeps trading while its PostgreSQL or Redis is stopped, and
nothing the venue reported is lost or stored twice.

The servers stopped here are private to each test (a throw-away PostgreSQL cluster, a
``redis-server`` subprocess), never the shared ones from ``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

import redis.asyncio as aioredis

from flashmm.config import load_settings
from flashmm.domain.instrument import Instrument
from flashmm.stores.redis_state import RedisState
from hotpath.engine import MarketMaker
from hotpath.loop import LoopConfig, QuoteLoop
from hotpath.quoting.params import QuoteParams
from hotpath.risk import RiskLimits
from hotpath.sinks import StoreSinks, open_sinks
from tests.integration.localnet_helpers import (
    BLOCK_S,
    BlockRecorder,
    Running,
    TapSeiVenue,
    bounded,
    localnet,
    localnet_cfg,
    running,
    sei_spec,
    urls,
    venue_for,
    wait_until,
)
from tests.integration.store_helpers import (
    PrivatePostgres,
    PrivateRedis,
    fetch,
    fill_counts,
    stop_redis_state,
)

HZ = 10.0
SYMBOL = "SEI/USDC"


def _loop(venue: TapSeiVenue, inst: Instrument, sinks: StoreSinks) -> tuple[QuoteLoop, MarketMaker]:
    mm = MarketMaker(
        inst,
        QuoteParams(),
        RiskLimits(stale_after_s=1.0),
        order_prefix="fmm",
        cancel_retry_s=0.5,
    )
    venue.watch_book = mm.book
    cfg = LoopConfig(
        quote_hz=HZ, reconcile_every_s=0.5, shutdown_timeout_s=3.0, snapshot_every_s=0.5
    )
    return QuoteLoop(mm, venue, cfg, sinks=sinks), mm


async def _trade_for(r: Running, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        r.alive()
        await asyncio.sleep(0.05)


# --- (a) PostgreSQL stopped for 10 s mid-session ----------------------------------------------


@bounded(60)
async def test_every_fill_is_stored_exactly_once_across_a_postgres_outage(
    tmp_path: Path, redis_url: str, services: dict[str, str]
) -> None:
    pg = await asyncio.to_thread(PrivatePostgres)
    try:
        await asyncio.to_thread(pg.start)
        settings = load_settings(
            stores={
                "postgres_dsn": pg.dsn,
                "redis_url": redis_url,
                "timeseries_url": services["vm"],
                "journal_dir": str(tmp_path / "journal"),
                "writer_memory_limit": 50,  # the outage's records overflow to the journal
            }
        )
        sinks, halted = await open_sinks(settings, SYMBOL)  # migrates the private database
        assert halted is None
        sinks.ts = None  # keep SEI/USDC points out of the shared VictoriaMetrics
        writer = sinks.pg
        assert writer is not None
        journal = writer.journal
        assert journal.parent == tmp_path / "journal"

        spec = sei_spec(seed=31, noise_market_rate=12.0)
        async with localnet(localnet_cfg((spec,))) as node:
            chain = BlockRecorder(node)
            rest, ws = urls(node)
            venue = venue_for(spec, (rest,), (ws,))
            loop, mm = _loop(venue, spec.instrument, sinks)
            addr = venue.wallet.address
            sinks.start()
            try:
                async with running(loop) as r:
                    await wait_until(
                        lambda: len(venue.fills) >= 2 and writer.written >= 10 and writer.up,
                        15,
                        r,
                        "trading with records stored",
                    )
                    # --- the outage ---
                    await asyncio.to_thread(pg.stop)
                    t_down = time.monotonic()
                    fills_down, places_down = len(venue.fills), len(venue.places)
                    cycles_down, written_down = mm.stats.cycles, writer.written
                    await wait_until(lambda: not writer.up, 5, r, "writer sees the outage")
                    await _trade_for(r, 10.0 - (time.monotonic() - t_down))
                    outage_s = time.monotonic() - t_down
                    fills_up, places_up = len(venue.fills), len(venue.places)
                    cycles_out = mm.stats.cycles - cycles_down
                    during = {f.fill_id for f in venue.fills[fills_down:fills_up]}
                    # trading went on: fills arrived and orders went out while it was down
                    assert fills_up > fills_down, "no fill during the outage"
                    assert places_up - places_down >= 10, (places_down, places_up)
                    assert cycles_out >= 0.8 * HZ * outage_s, (cycles_out, outage_s)
                    # ... and nothing reached the database, the records waited
                    assert writer.written == written_down
                    assert not writer.up and writer.failures >= 1
                    assert writer.backlog > 50 and writer.spilled > 0
                    assert journal.exists()
                    # --- back ---
                    await asyncio.to_thread(pg.start)
                    await wait_until(lambda: writer.up, 10, r, "writer reconnects")
                    await wait_until(
                        lambda: len(venue.fills) > fills_up, 10, r, "a fill after the outage"
                    )
                    assert writer.written > written_down
                # the loop cancelled everything; let what was in flight land on chain
                await asyncio.sleep(3 * BLOCK_S)
                assert await writer.flush(15), f"backlog {writer.backlog} not written"
            finally:
                if sinks.redis is not None:
                    await stop_redis_state(sinks.redis)
                await sinks.close()
        assert not journal.exists() or journal.read_text() == ""

        chain_ids = [e["fill_id"] for e in chain.events("dex_order_filled", addr)]
        reported = {f.fill_id: f for f in venue.fills}
        assert len(chain_ids) == len(set(chain_ids))
        assert set(chain_ids) == set(reported)
        counts = await fill_counts(pg.dsn)
        assert {k: n for k, n in counts.items() if n != 1} == {}  # exactly once each
        assert set(counts) == set(reported)
        assert during and during <= set(counts)  # including those made while it was down
        inst = spec.instrument
        for row in await fetch(pg.dsn, "SELECT * FROM fills"):
            f = reported[row["fill_id"]]
            assert row["client_id"] == f.client_id
            assert row["market"] == SYMBOL and row["side"] == int(f.side)
            assert row["price"] == Decimal(str(inst.ticks_to_price(f.price)))
            assert row["quantity"] == Decimal(str(inst.lots_to_size(f.lots)))
            assert row["liquidity"] == f.liquidity.value
        # every order the hot path sent has its row too
        orders = {r["client_id"] for r in await fetch(pg.dsn, "SELECT client_id FROM orders")}
        assert {p.client_id for p in venue.places} <= orders
    finally:
        await asyncio.to_thread(pg.destroy)


# --- (b) Redis stopped mid-session ----------------------------------------------------------


async def _keys(url: str) -> set[str]:
    c = aioredis.from_url(url, decode_responses=True, socket_timeout=1.0)
    try:
        return set(await c.keys("*"))
    finally:
        await c.aclose()


@bounded(40)
async def test_the_hot_path_keeps_its_pace_while_redis_is_down_and_redis_recovers() -> None:
    server = PrivateRedis()
    await asyncio.to_thread(server.start)
    rs = RedisState(server.url, interval_s=0.1)
    sinks = StoreSinks(redis=rs)
    want = {f"orderbook:{SYMBOL}", f"positions:{SYMBOL}", f"events:{SYMBOL}"}
    try:
        spec = sei_spec(seed=33, noise_market_rate=10.0)
        async with localnet(localnet_cfg((spec,))) as node:
            rest, ws = urls(node)
            venue = venue_for(spec, (rest,), (ws,))
            loop, mm = _loop(venue, spec.instrument, sinks)
            sinks.start()
            try:
                async with running(loop) as r:
                    await wait_until(lambda: rs.up and rs.writes >= 3, 10, r, "Redis written")
                    assert want <= await _keys(server.url)
                    c0, t0 = mm.stats.cycles, time.monotonic()
                    await _trade_for(r, 2.0)
                    base_rate = (mm.stats.cycles - c0) / (time.monotonic() - t0)
                    errors0, malformed0 = loop.venue_errors, loop.malformed
                    # --- Redis goes away ---
                    await asyncio.to_thread(server.stop)
                    t_down, c_down = time.monotonic(), mm.stats.cycles
                    places_down = len(venue.places)
                    await wait_until(lambda: not rs.up, 5, r, "RedisState notices")
                    await _trade_for(r, 5.0 - (time.monotonic() - t_down))
                    out_rate = (mm.stats.cycles - c_down) / (time.monotonic() - t_down)
                    assert out_rate >= 0.8 * HZ, (out_rate, base_rate)
                    assert out_rate >= 0.7 * base_rate, (out_rate, base_rate)
                    assert len(venue.places) > places_down
                    assert (loop.venue_errors, loop.malformed) == (errors0, malformed0)
                    assert not rs.up and rs.failures >= 1
                    assert rs._task is not None and not rs._task.done()
                    # --- a fresh, empty Redis on the same port ---
                    await asyncio.to_thread(server.start)
                    t_up = time.monotonic()
                    while not want <= await _keys(server.url):
                        r.alive()
                        assert time.monotonic() - t_up < 5, "keys did not reappear in 5 s"
                        await asyncio.sleep(0.1)
                    await wait_until(lambda: rs.up, 3, r, "RedisState up again")
                    c = aioredis.from_url(server.url, decode_responses=True)
                    try:
                        book = await c.hgetall(f"orderbook:{SYMBOL}")
                        ttl = await c.pttl(f"orderbook:{SYMBOL}")
                    finally:
                        await c.aclose()
                    assert time.time() - float(book["timestamp"]) < 3.0  # fresh state
                    assert int(book["sequence"]) > 0 and 0 < ttl <= 10_000
            finally:
                if sinks.redis is not None:
                    await stop_redis_state(sinks.redis)
                await sinks.close()
    finally:
        await asyncio.to_thread(server.destroy)
