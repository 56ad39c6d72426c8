"""Hot-path benchmarks: quote cycle latency, book update throughput, backtest speed, RSS.

Writes a flat JSON object (``--out``), merging into an existing file so later issues can
add their own figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.api import bench_api
from bench.deadman import bench_deadman
from bench.e2e import bench_e2e
from bench.estop import bench_estop
from bench.estop_load import bench_estop_under_load
from bench.ml import bench_inference, bench_model_two_markets
from bench.replay import bench_replay
from bench.spread import bench_spread
from flashmm.domain.instrument import SEI_USDC
from flashmm.sim.core import SimVenueCore
from flashmm.sim.market import SimMarket
from flashmm.sim.params import MarketParams, VenueParams
from flashmm.venue.base import BookDelta, BookSnapshot
from hotpath.backtest import BacktestConfig, run_backtest
from hotpath.book import FeedBook
from hotpath.engine import MarketMaker
from hotpath.quoting.params import QuoteParams
from hotpath.risk import RiskLimits


def _pct(xs: list[int], q: float) -> float:
    s = sorted(xs)
    return float(s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))])


def bench_quote_cycle(cycles: int = 20_000) -> dict[str, float]:
    """Book snapshot → batch handed to the venue, no model, on a live simulated book."""
    core = SimVenueCore(
        SEI_USDC, MarketParams(seed=11), VenueParams(), lambda t, e: None, lambda t, tr: None
    )
    mm = MarketMaker(
        SEI_USDC, QuoteParams(), RiskLimits(max_actions_per_s=10_000), book=core.exchange.book
    )
    samples: list[int] = []
    t = core.time
    gc.collect()
    for _ in range(cycles):
        t += 0.2
        core.run_until(t)
        # our orders never get acks here (reports go nowhere); keep the book of live orders
        # realistic by treating everything as resting: clear what the matcher no longer has
        mm.on_data(int(t * 1e9))
        t0 = time.perf_counter_ns()
        batch = mm.cycle(int(t * 1e9))
        core.submit(batch, t)
        samples.append(time.perf_counter_ns() - t0)
        for c in batch.cancels:
            mm.on_cancelled(c.client_id)
    return {
        "hotpath.quote_cycle_p50_us": _pct(samples, 50) / 1000,
        "hotpath.quote_cycle_p99_us": _pct(samples, 99) / 1000,
        "hotpath.quote_cycles": float(cycles),
    }


def bench_live_cycle(
    seconds: float = 10.0, quote_hz: float = 20.0, rounds: int = 3, background: bool = True
) -> dict[str, float]:
    """The cycle inside the asyncio loop against the wall-clock in-process venue: without a
    model and with the bundled transformer computed off the cycle (``BackgroundModelSignal``
    with the default ``ml`` settings), interleaved in ``rounds`` pairs (ABBA order) so load
    from elsewhere on the machine falls on both alike; then with every store attached
    (PostgreSQL writer, Redis, time series), same seed. The figure is cycle start → batch
    handed to the venue, store records included, over each run but its first ``seq_len``
    cycles (the model's warm-up, when it does not run yet; left out in every run alike).
    ``background=False`` runs the model inline in the cycle (``ModelSignal``, as before)."""
    import asyncio

    from cli.demo import BUNDLED_MODEL
    from flashmm import devservices
    from flashmm.config.ml import MLSettings
    from flashmm.sim.inprocess import InProcessVenue
    from flashmm.stores.pg.migrate import migrate
    from hotpath.background_signal import BackgroundModelSignal
    from hotpath.inference import Model, ModelSignal, load_model
    from hotpath.loop import LoopConfig, QuoteLoop
    from hotpath.sinks import StoreSinks

    async def go(with_stores: bool, model: Model | None, secs: float) -> list[int]:
        venue = InProcessVenue(SEI_USDC, MarketParams(seed=13))
        ml = MLSettings()
        sig: ModelSignal | None = None
        if model is not None and background:
            sig = BackgroundModelSignal(
                model, max_age_ms=ml.max_signal_age_ms, lead_ms=ml.signal_lead_ms
            )
        elif model is not None:
            sig = ModelSignal(model, ml.horizon_s, ml.budget_us, ml.slow_trip)
        mm = MarketMaker(SEI_USDC, QuoteParams(), RiskLimits(), signal=sig)
        sinks = None
        if with_stores:
            import tempfile

            from flashmm.stores.pg.writer import DurableWriter
            from flashmm.stores.redis_state import RedisState
            from flashmm.stores.timeseries import TimeSeriesWriter

            await migrate(devservices.PG_DSN)
            journal = Path(tempfile.mkdtemp()) / "bench.jsonl"
            sinks = StoreSinks(
                DurableWriter(devservices.PG_DSN, journal),
                RedisState(devservices.REDIS_URL),
                TimeSeriesWriter(devservices.VM_URL, "flashmm", "flashmm"),
            )
            sinks.start()
        ql = QuoteLoop(mm, venue, LoopConfig(quote_hz=quote_hz, snapshot_every_s=1.0), sinks=sinks)
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(secs, stop.set)
        await ql.run(stop)
        await venue.close()
        if sinks is not None:
            await sinks.close()
        if isinstance(sig, BackgroundModelSignal):
            sig.close()
        figs = mm.signal_figures()
        if figs is not None:
            shares.append((figs["live_cycles"], figs["cycles"] - figs["warmup_cycles"]))
        # the first cycles of a run (the model's warm-up: no inference yet) are left out,
        # in both modes alike; the ring is in order for runs under 8192 cycles
        return mm.timers["to_venue"].samples()[skip:]

    devservices.ensure()
    model = load_model(str(BUNDLED_MODEL))
    skip = model.seq_len  # the model's warm-up: this many cycles fill its window
    shares: list[tuple[int, int]] = []
    bare: list[int] = []
    with_model: list[int] = []
    for i in range(rounds):
        for m in (None, model) if i % 2 == 0 else (model, None):
            (bare if m is None else with_model).extend(asyncio.run(go(False, m, seconds / rounds)))
    stores = asyncio.run(go(True, None, seconds))
    bare_p99 = _pct(bare, 99) / 1000
    model_p99 = _pct(with_model, 99) / 1000
    return {
        "hotpath.live_cycle_p50_us": _pct(bare, 50) / 1000,
        "hotpath.live_cycle_p99_us": bare_p99,
        "hotpath.live_cycles": float(len(bare)),
        "hotpath.quote_cycle_p50_us_with_model": _pct(with_model, 50) / 1000,
        "hotpath.quote_cycle_p99_us_with_model": model_p99,
        "hotpath.quote_cycles_with_model": float(len(with_model)),
        "hotpath.quote_cycle_p99_with_model_ratio": model_p99 / bare_p99,
        "hotpath.live_signal_share_inprocess": sum(a for a, _ in shares)
        / max(1, sum(n for _, n in shares)),
        "hotpath.quote_cycle_p50_us_with_stores": _pct(stores, 50) / 1000,
        "hotpath.quote_cycle_p99_us_with_stores": _pct(stores, 99) / 1000,
    }


def bench_book(seconds: float = 900.0) -> dict[str, float]:
    """Apply a recorded stream of L2 deltas from the simulated market through ``FeedBook``."""
    m = SimMarket(MarketParams(seed=5), record_deltas=True)
    bids, asks = m.exchange.book.snapshot()
    start = BookSnapshot(0, tuple(bids), tuple(asks), 0)
    deltas: list[BookDelta] = []
    seq = 0
    end = m.time + seconds
    while m.next_time <= end:
        m.step()
        if m.exchange.deltas:
            seq += 1
            deltas.append(BookDelta(seq, tuple(m.exchange.deltas), 0))
            m.exchange.deltas.clear()
        m.take_trades()
    levels = sum(len(d.levels) for d in deltas)
    best = 0.0
    for _ in range(3):
        fb = FeedBook()
        fb.apply_snapshot(start)
        gc.collect()
        t0 = time.perf_counter()
        for d in deltas:
            fb.apply_delta(d)
        dt = time.perf_counter() - t0
        best = max(best, levels / dt)
        if fb.book.snapshot() != m.exchange.book.snapshot():
            raise AssertionError("replayed book differs from the matcher's book")
    return {"book.updates_per_s": best, "book.updates_measured": float(levels)}


def bench_backtest(minutes: float = 30.0) -> dict[str, float]:
    """Generated-market backtest speed on the compiled event core (the default), and the
    same session on the reference Python core (same seed, same results)."""
    r = run_backtest(BacktestConfig(minutes=minutes, market=MarketParams(seed=7)))
    s = r.summary
    py = run_backtest(
        BacktestConfig(minutes=minutes, market=MarketParams(seed=7), sim_core="python")
    ).summary
    return {
        "backtest.events_per_s": s["events_per_s"],
        "backtest.market_events": float(s["market_events"]),
        "backtest.quote_cycles": float(s["cycles"]),
        "backtest.wall_s": s["wall_s"],
        "backtest.python_core_events_per_s": py["events_per_s"],
    }


def bench_rss(duration: float = 20.0) -> dict[str, float]:
    """Peak resident memory of one hot-path process trading on a localnet process."""
    import os

    node = subprocess.Popen(
        [sys.executable, "-m", "cli", "localnet", "--rest-port", "0", "--rpc-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert node.stdout is not None
        ready = json.loads(node.stdout.readline())
        env = {
            **os.environ,
            "FLASHMM_VENUE__REST_URLS": json.dumps([ready["rest"]]),
            "FLASHMM_VENUE__WS_URLS": json.dumps([ready["rpc"]]),
        }
        hp = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cli",
                "hotpath",
                "--market",
                "SEI/USDC",
                "--duration",
                str(duration),
                "--json",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        peak_kb = 0
        while hp.poll() is None:
            try:
                with open(f"/proc/{hp.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak_kb = max(peak_kb, int(line.split()[1]))
            except FileNotFoundError:
                break
            time.sleep(0.5)
        hp.wait()
    finally:
        node.terminate()
        node.wait()
    return {"hotpath.rss_mb": peak_kb / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description="FlashMM benchmarks")
    ap.add_argument("--out", default="bench/results.json")
    ap.add_argument("--quick", action="store_true", help="smaller runs (smoke test)")
    ap.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="run only these (repeatable)"
    )
    args = ap.parse_args()
    q = args.quick
    results: dict[str, Any] = {}
    out = Path(args.out)
    if out.exists():
        results.update(json.loads(out.read_text()))
    benches: tuple[tuple[str, Callable[[], dict[str, Any]]], ...] = (
        ("quote cycle", lambda: bench_quote_cycle(2_000 if q else 20_000)),
        ("live cycle", lambda: bench_live_cycle(3 if q else 60, rounds=1 if q else 4)),
        ("book", lambda: bench_book(60 if q else 900)),
        ("backtest", lambda: bench_backtest(2 if q else 30)),
        ("replay", lambda: bench_replay(1 if q else 3)),
        ("spread", lambda: bench_spread(3 if q else 10, 2 if q else 10)),
        ("rss", lambda: bench_rss(3 if q else 20)),
        ("e2e", lambda: bench_e2e(5 if q else 30)),
        ("ml", lambda: bench_inference(500 if q else 3000)),
        ("ml live", lambda: bench_model_two_markets(10 if q else 60)),
        ("estop", lambda: bench_estop(3 if q else 20)),
        ("deadman", lambda: bench_deadman(3 if q else 10)),
        ("api", lambda: bench_api(5 if q else 20)),
        ("estop load", lambda: bench_estop_under_load(10 if q else 100)),
    )
    for name, fn in benches:
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        figures = fn()
        results.update(figures)
        print(f"{name:<12} {json.dumps(figures)}  ({time.perf_counter() - t0:.1f}s)", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
