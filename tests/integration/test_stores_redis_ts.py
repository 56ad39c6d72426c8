"""Redis hot state and the time-series store against real servers: the documented keys,
fields and TTLs, ``put_*`` never waiting on Redis (and recovery when it appears), points
read back from VictoriaMetrics, and the report's figures computed from points written here.

Redis tests use this worker's own logical database (``redis_url``); time-series tests use
market names of their own, since VictoriaMetrics is shared by every worker.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis as redis_sync

from flashmm.stores.redis_state import RedisState
from flashmm.stores.report import figures
from flashmm.stores.timeseries import TimeSeriesWriter
from tests.integration.store_helpers import (
    PrivateRedis,
    free_port,
    stop_redis_state,
    unique,
    vm_wait_series,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]
TICK = Decimal("0.0001")
LOT = Decimal("1")


def _client(url: str) -> redis_sync.Redis:
    return redis_sync.Redis.from_url(url, decode_responses=True, socket_timeout=2)


# --- Redis hot state ----------------------------------------------------------------------


async def test_redis_state_writes_the_documented_keys_fields_and_ttls(redis_url: str) -> None:
    sym = unique("SYM") + "/USDC"
    r = _client(redis_url)
    rs = RedisState(redis_url, interval_s=0.05)
    bids = [(4321, 120), (4320, 80)]
    asks = [(4323, 55)]
    t_put = time.time()
    rs.put_book(sym, 17, bids, asks, TICK, LOT)
    rs.put_position(sym, 150.0, -64.75, 64.8)
    for i in range(105):
        rs.put_prediction(sym, {"i": i, "dir": 1 if i % 2 else -1})
    rs.put_event(sym, "fill", {"fill_id": "F1", "price": "0.4321"})
    rs.put_event(sym, "quote", {"bid": 0.4321, "ask": 0.4323})
    rs.start()
    try:
        await wait_for(lambda: rs.writes >= 1, 5, "first Redis write")
        assert rs.up
        keys = set(r.keys("*"))
        assert keys == {
            f"orderbook:{sym}",
            f"positions:{sym}",
            f"predictions:{sym}",
            f"events:{sym}",
        }
        book = r.hgetall(f"orderbook:{sym}")
        assert set(book) == {"timestamp", "sequence", "bids_json", "asks_json"}
        assert book["sequence"] == "17"
        assert json.loads(book["bids_json"]) == [["0.4321", "120"], ["0.4320", "80"]]
        assert json.loads(book["asks_json"]) == [["0.4323", "55"]]
        assert abs(float(book["timestamp"]) - t_put) < 2.0
        assert 8_000 < r.pttl(f"orderbook:{sym}") <= 10_000
        pos = r.hgetall(f"positions:{sym}")
        assert set(pos) == {"base_balance", "quote_balance", "position_usdc", "last_updated"}
        assert (float(pos["base_balance"]), float(pos["quote_balance"])) == (150.0, -64.75)
        assert float(pos["position_usdc"]) == 64.8
        assert abs(float(pos["last_updated"]) - t_put) < 2.0
        assert r.ttl(f"positions:{sym}") == -1  # no TTL documented for positions
        preds = [json.loads(x) for x in r.lrange(f"predictions:{sym}", 0, -1)]
        # capped at 100, newest first
        assert [p["i"] for p in preds] == list(range(104, 4, -1))
        assert preds[0] == {"i": 104, "dir": -1}
        assert 290 < r.ttl(f"predictions:{sym}") <= 300
        events = r.xrange(f"events:{sym}")
        assert [set(f) for _, f in events] == [{"type", "ts", "data"}] * 2
        assert [(f["type"], json.loads(f["data"])) for _, f in events] == [
            ("fill", {"fill_id": "F1", "price": "0.4321"}),
            ("quote", {"bid": 0.4321, "ask": 0.4323}),
        ]
        # a newer book replaces the hash and refreshes its TTL; the list keeps its cap
        await asyncio.sleep(1.1)
        rs.put_book(sym, 18, [(4322, 1)], [], TICK, LOT)
        rs.put_prediction(sym, {"i": 105, "dir": 1})
        writes = rs.writes
        await wait_for(lambda: rs.writes > writes, 5, "second Redis write")
        book = r.hgetall(f"orderbook:{sym}")
        assert book["sequence"] == "18"
        assert json.loads(book["bids_json"]) == [["0.4322", "1"]]
        assert json.loads(book["asks_json"]) == []
        assert r.pttl(f"orderbook:{sym}") > 9_000
        assert r.llen(f"predictions:{sym}") == 100
        assert json.loads(r.lindex(f"predictions:{sym}", 0))["i"] == 105
        assert r.xlen(f"events:{sym}") == 2  # events are written once
    finally:
        await stop_redis_state(rs)
        r.close()


async def test_put_calls_never_wait_on_an_unreachable_redis_and_it_recovers() -> None:
    port = free_port()
    sym = unique("SYM") + "/USDC"
    name = unique("rs")
    rs = RedisState(f"redis://127.0.0.1:{port}/0", interval_s=0.05, name=name)
    rs.start()
    server = PrivateRedis(port)
    try:
        await wait_for(lambda: rs.failures >= 2, 5, "failed writes to a closed port")
        assert not rs.up
        dropped = _dropped(name)
        depth = [(4300 + i, 10 + i) for i in range(20)]
        rounds: list[float] = []
        n = 0
        for _ in range(5):  # five rounds of 10,000 calls; the best one is judged
            t0 = time.perf_counter()
            for _ in range(2_500):
                rs.put_book(sym, n, depth, depth, TICK, LOT)
                rs.put_position(sym, float(n), -float(n), 0.5 * n)
                rs.put_prediction(sym, {"i": n})
                rs.put_event(sym, "quote", {"i": n})
                n += 1
            rounds.append(time.perf_counter() - t0)
            await asyncio.sleep(0)
        assert min(rounds) < 0.05, f"10,000 put_* calls took {min(rounds) * 1e3:.1f} ms at best"
        assert max(rounds) < 1.0, rounds
        # 12,500 events into a queue of 5,000: the oldest 7,500 dropped and counted
        assert _dropped(name) - dropped == 7_500
        await asyncio.sleep(0.3)
        assert not rs.up  # still down, still trying
        # the server appears on that port: the newest state arrives by itself
        await asyncio.to_thread(server.start)
        await wait_for(lambda: rs.up and rs.writes >= 1, 6, "reconnect to Redis")
        r = _client(server.url)
        try:
            book = r.hgetall(f"orderbook:{sym}")
            assert book["sequence"] == str(n - 1)  # only the newest book is kept
            assert 0 < r.pttl(f"orderbook:{sym}") <= 10_000
            assert r.hget(f"positions:{sym}", "base_balance") == repr(float(n - 1))
            preds = [json.loads(x)["i"] for x in r.lrange(f"predictions:{sym}", 0, -1)]
            assert preds == list(range(n - 1, n - 101, -1))
            # the newest 5,000 events waited and arrived once, in order
            events = r.xrange(f"events:{sym}")
            assert [json.loads(f["data"])["i"] for _, f in events] == list(range(n - 5_000, n))
        finally:
            r.close()
    finally:
        await stop_redis_state(rs)
        await asyncio.to_thread(server.destroy)


async def test_an_event_put_while_a_write_is_in_flight_is_not_lost(redis_url: str) -> None:
    sym = unique("SYM")
    rs = RedisState(redis_url, events_limit=5)
    r = _client(redis_url)
    try:
        for i in range(5):
            rs.put_event(sym, "quote", {"i": i})
        writing = asyncio.create_task(rs._flush())
        await asyncio.sleep(0)  # the write has taken its batch and waits on the socket
        rs.put_event(sym, "quote", {"i": 5})
        await writing
        await rs._flush()  # whatever is still queued
        sent = [json.loads(f["data"])["i"] for _, f in r.xrange(f"events:{sym}")]
    finally:
        await rs.close()
        r.close()
    assert 5 in sent, sent


async def test_close_during_a_background_write_sends_each_event_once(redis_url: str) -> None:
    sym = unique("SYM")
    rs = RedisState(redis_url, interval_s=0.0)
    for i in range(200):
        rs.put_event(sym, "quote", {"i": i})
    rs.start()
    for _ in range(1_000):  # until the task's flush has taken its batch and is writing
        if rs._client is not None:
            break
        await asyncio.sleep(0)
    assert rs._client is not None and rs.writes == 0
    error: BaseException | None = None
    try:
        await asyncio.wait_for(rs.close(), 10)
    except Exception as e:  # what close() let escape
        error = e
    finally:
        await stop_redis_state(rs)
    r = _client(redis_url)
    try:
        sent = [json.loads(f["data"])["i"] for _, f in r.xrange(f"events:{sym}")]
    finally:
        r.close()
    assert error is None, repr(error)
    assert sent == list(range(200))


async def test_close_returns_even_if_a_flush_loses_its_cancellation(redis_url: str) -> None:
    rs = RedisState(redis_url, interval_s=0.01)
    real_flush = rs._flush
    in_flight = asyncio.Event()
    lost = 0

    async def flush() -> None:
        nonlocal lost
        await real_flush()
        if asyncio.current_task() is not rs._task:
            return  # close()'s own final flush: quick
        try:
            in_flight.set()
            await asyncio.sleep(0.5)  # the task's write still on the wire
        except asyncio.CancelledError:
            if lost == 0:  # what asyncio.wait_for may do on Python 3.11
                lost += 1
                return
            raise
        finally:
            in_flight.clear()

    rs._flush = flush  # type: ignore[method-assign]
    rs.put_event("S", "quote", {"i": 1})
    rs.start()
    await asyncio.wait_for(in_flight.wait(), 5)
    closing = asyncio.create_task(rs.close())
    done, _ = await asyncio.wait({closing}, timeout=5)
    if closing not in done:
        closing.cancel()
        await asyncio.wait({closing}, timeout=1)
        await stop_redis_state(rs)
    assert lost == 1
    assert closing in done, "close() did not return within 5 s"


# --- time series --------------------------------------------------------------------------


def _ms(t: float) -> int:
    return round(t * 1000)


async def test_timeseries_points_read_back_with_names_tags_and_values(
    services: dict[str, str],
) -> None:
    vm = services["vm"]
    market = unique("TS")
    t0 = math.floor(time.time()) - 30.0
    w = TimeSeriesWriter(vm, "flashmm", "flashmm")
    for i in range(3):
        w.trading(
            market,
            spread_bps=10.0 + i,
            our_spread_bps=4.5 + i,
            improvement_pct=55.0 - i,
            fills=i,
            pnl=-1.25 + i,
            inventory=300.0 - i,
            latency_us=42.5 * (i + 1),
            ts_ns=int((t0 + i) * 1e9),
        )
    w.prediction(market, "1s", predicted=1, realised=-1, confidence=0.75, ts_ns=int(t0 * 1e9))
    w.prediction(market, "5s", predicted=-1, realised=0, confidence=0.5, ts_ns=int(t0 * 1e9))
    await w.flush()
    assert w.written == 5
    series = await vm_wait_series(vm, f'{{market="{market}"}}', t0 - 5, t0 + 10, 13, 27, 15)
    got: dict[tuple[str, str | None], tuple[list[int], list[float]]] = {}
    for s in series:
        labels = dict(s["metric"])
        name = labels.pop("__name__")
        assert labels.pop("market") == market
        horizon = labels.pop("horizon", None)
        assert labels == {}, labels  # no other tags
        got[(name, horizon)] = (s["timestamps"], s["values"])
    ts3 = [_ms(t0 + i) for i in range(3)]
    assert got == {
        ("trading_metrics_spread_bps", None): (ts3, [10.0, 11.0, 12.0]),
        ("trading_metrics_our_spread_bps", None): (ts3, [4.5, 5.5, 6.5]),
        ("trading_metrics_improvement_pct", None): (ts3, [55.0, 54.0, 53.0]),
        ("trading_metrics_fills", None): (ts3, [0.0, 1.0, 2.0]),
        ("trading_metrics_pnl", None): (ts3, [-1.25, -0.25, 0.75]),
        ("trading_metrics_inventory", None): (ts3, [300.0, 299.0, 298.0]),
        ("trading_metrics_latency_us", None): (ts3, [42.5, 85.0, 127.5]),
        ("ml_predictions_predicted", "1s"): ([_ms(t0)], [1.0]),
        ("ml_predictions_realised", "1s"): ([_ms(t0)], [-1.0]),
        ("ml_predictions_confidence", "1s"): ([_ms(t0)], [0.75]),
        ("ml_predictions_predicted", "5s"): ([_ms(t0)], [-1.0]),
        ("ml_predictions_realised", "5s"): ([_ms(t0)], [0.0]),
        ("ml_predictions_confidence", "5s"): ([_ms(t0)], [0.5]),
    }


async def test_timeseries_background_writer_and_points_kept_while_the_server_is_away(
    services: dict[str, str],
) -> None:
    vm = services["vm"]
    market = unique("TS")
    t0 = math.floor(time.time()) - 20.0
    name = unique("tsw")
    w = TimeSeriesWriter(
        f"http://127.0.0.1:{free_port()}", "flashmm", "flashmm", limit=3, name=name
    )
    dropped = _dropped(name)
    for i in range(5):
        w.trading(
            market,
            spread_bps=float(i),
            our_spread_bps=0.0,
            improvement_pct=0.0,
            fills=0,
            pnl=0.0,
            inventory=0.0,
            latency_us=0.0,
            ts_ns=int((t0 + i) * 1e9),
        )
    assert _dropped(name) - dropped == 2  # the oldest two, counted
    with pytest.raises(Exception):  # noqa: B017 (the client raises several kinds)
        await asyncio.wait_for(w.flush(), 10)
    assert w.written == 0
    # the server is back (here: the right address); the newest ``limit`` points are sent
    w.url = vm
    w.interval_s = 0.05
    w.start()
    try:
        await wait_for(lambda: w.written == 3, 10, "background time-series write")
        assert w.up
    finally:
        await w.close()
    match = f'{{__name__="trading_metrics_spread_bps",market="{market}"}}'
    series = await vm_wait_series(vm, match, t0 - 5, t0 + 10, 1, 3, 15)
    assert series[0]["values"] == [2.0, 3.0, 4.0]
    assert series[0]["timestamps"] == [_ms(t0 + i) for i in (2, 3, 4)]


def _dropped(name: str) -> float:
    from prometheus_client import REGISTRY

    return float(REGISTRY.get_sample_value("flashmm_store_dropped_total", {"store": name}) or 0)


def _trading(w: TimeSeriesWriter, market: str, t: float, mkt: float, ours: float) -> None:
    w.trading(
        market,
        spread_bps=mkt,
        our_spread_bps=ours,
        improvement_pct=(1 - ours / mkt) * 100,
        fills=0,
        pnl=0.0,
        inventory=0.0,
        latency_us=10.0,
        ts_ns=int(t * 1e9),
    )


def _predictions(
    w: TimeSeriesWriter, market: str, horizon: str, t0: float, pairs: list[tuple[int, int]]
) -> None:
    for i, (p, r) in enumerate(pairs):
        w.prediction(
            market, horizon, predicted=p, realised=r, confidence=0.6, ts_ns=int((t0 + i) * 1e9)
        )


async def _write_report_data(vm: str) -> tuple[str, str, float]:
    """Two markets of hand-made points: five in the last ten minutes and one (that would
    change every figure) fifty minutes ago."""
    a, b = unique("RA"), unique("RB")
    now = math.floor(time.time())
    w = TimeSeriesWriter(vm, "flashmm", "flashmm")
    start = now - 300.0
    for i, (mkt, ours) in enumerate([(10, 5), (20, 10), (30, 15), (40, 20), (50, 30)]):
        _trading(w, a, start + 10 * i, mkt, ours)
    _trading(w, a, now - 3000.0, 1000.0, 1.0)  # outside a 10-minute window
    _trading(w, b, start, 10.0, 9.0)
    _trading(w, b, start + 10, 30.0, 27.0)
    # horizon 1s: hits, miss, hit, hit (no move), miss (no move)
    _predictions(w, a, "1s", start, [(1, 1), (1, -1), (-1, -1), (0, 0), (1, 0)])
    _predictions(w, a, "1s", now - 3000.0, [(1, -1)])  # outside the window
    # horizon 5s: hit, miss, hit (no move), miss
    _predictions(w, a, "5s", start + 100, [(1, 1), (-1, 1), (0, 0), (0, -1)])
    _predictions(w, b, "1s", start, [(1, 1)])
    await w.flush()
    # everything searchable: 2 trading series per market, predictions for 3 (market, horizon)
    markets = f'market=~"{a}|{b}"'
    spreads = f'{{__name__=~"trading_metrics_(our_)?spread_bps",{markets}}}'
    await vm_wait_series(vm, spreads, now - 3600, now + 60, 4, 16, 15)
    preds = f'{{__name__=~"ml_predictions_(predicted|realised)",{markets}}}'
    await vm_wait_series(vm, preds, now - 3600, now + 60, 6, 22, 15)
    return a, b, float(now)


def _expected_a_10min() -> dict[str, Any]:
    return {
        "points": 5,
        "market_spread_bps": 30.0,
        "our_spread_bps": 16.0,
        "spread_improvement_pct": pytest.approx((1 - 16 / 30) * 100),
        "accuracy": {
            "1s": {"n": 5.0, "accuracy": 0.6, "n_moved": 3.0, "accuracy_moved": 2 / 3},
            "5s": {"n": 4.0, "accuracy": 0.5, "n_moved": 3.0, "accuracy_moved": 1 / 3},
        },
    }


def _expected_b() -> dict[str, Any]:
    return {
        "points": 2,
        "market_spread_bps": 20.0,
        "our_spread_bps": 18.0,
        "spread_improvement_pct": pytest.approx(10.0),
        "accuracy": {"1s": {"n": 1.0, "accuracy": 1.0, "n_moved": 1.0, "accuracy_moved": 1.0}},
    }


def _as_dict(f: Any) -> dict[str, Any]:
    return {
        "points": f.points,
        "market_spread_bps": f.market_spread_bps,
        "our_spread_bps": f.our_spread_bps,
        "spread_improvement_pct": f.spread_improvement_pct,
        "accuracy": f.accuracy,
    }


async def test_figures_compute_improvement_and_accuracy_by_market_and_window(
    services: dict[str, str],
) -> None:
    vm = services["vm"]
    a, b, now = await _write_report_data(vm)
    only_a = await figures(vm, now - 600, now + 1, market=a)
    assert set(only_a) == {a}
    assert _as_dict(only_a[a]) == _expected_a_10min()
    # no market filter: both markets, each with its own figures (others may exist too)
    both = await figures(vm, now - 600, now + 1)
    assert _as_dict(both[a]) == _expected_a_10min()
    assert _as_dict(both[b]) == _expected_b()
    # a window that reaches the old point: it changes every figure of A
    hour = _as_dict((await figures(vm, now - 3600, now + 1, market=a))[a])
    assert hour["points"] == 6
    assert hour["market_spread_bps"] == pytest.approx((150 + 1000) / 6)
    assert hour["our_spread_bps"] == pytest.approx((80 + 1) / 6)
    assert hour["spread_improvement_pct"] == pytest.approx((1 - 81 / 1150) * 100)
    assert hour["accuracy"]["1s"] == {
        "n": 6.0,
        "accuracy": 0.5,
        "n_moved": 4.0,
        "accuracy_moved": 0.5,
    }
    # a window before everything: nothing
    assert await figures(vm, now - 7200, now - 3700, market=a) == {}


async def test_cli_report_json(services: dict[str, str]) -> None:
    vm = services["vm"]
    a, b, _ = await _write_report_data(vm)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHMM_")}
    env["FLASHMM_STORES__TIMESERIES_URL"] = vm

    def report(*args: str) -> dict[str, Any]:
        p = subprocess.run(
            [sys.executable, "-m", "cli", "report", "--json", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert p.returncode == 0, p.stderr
        out: dict[str, Any] = json.loads(p.stdout)
        return out

    ten = await asyncio.to_thread(report, "--market", a, "--minutes", "10")
    assert set(ten) == {a}
    assert ten[a] == _expected_a_10min()
    hour = await asyncio.to_thread(report, "--market", a, "--minutes", "60")
    assert hour[a]["points"] == 6
    assert hour[a]["spread_improvement_pct"] == pytest.approx((1 - 81 / 1150) * 100)
    other = await asyncio.to_thread(report, "--market", b, "--minutes", "10")
    assert other == {b: _expected_b()}
