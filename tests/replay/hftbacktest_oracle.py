"""The hftbacktest oracle: replays Binance USD-M captures through hftbacktest 2.4.4 with the
``fixed`` strategy and prints one JSON line of figures, to cross-check ``flashmm backtest --data``.

Runs in its own venv (``make oracle``; ``.venv-oracle/bin/python``), never imports flashmm: only
the standard library, numpy and hftbacktest. See docs/replay-oracle.md for what it assumes.

    .venv-oracle/bin/python tests/replay/hftbacktest_oracle.py \\
        --files ../shared/data/binance-usdm/btcusdt_20240718.gz \\
                ../shared/data/binance-usdm/btcusdt_20240719.gz \\
        --tick 0.1 --lot 0.001 --half-spread-ticks 1 --order-qty 0.01 --requote-ms 100 \\
        --latency-ms 1 --queue risk-averse
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from hftbacktest import (
    BUY,
    CANCELED,
    DEPTH_SNAPSHOT_EVENT,
    EXPIRED,
    FILLED,
    GTX,
    LIMIT,
    LOCAL_EVENT,
    NEW,
    NONE,
    SELL,
    BacktestAsset,
    HashMapMarketDepthBacktest,
)
from hftbacktest.data.utils import binancefutures
from numba import njit

# hftbacktest's depth answers these ticks for an empty side
INVALID_MIN = np.iinfo(np.int64).min
INVALID_MAX = np.iinfo(np.int64).max

# slots of the figures array the strategy fills
S_BUYS, S_SELLS, S_SUBMITTED, S_STEPS, S_LAST_MID, S_EXPIRED = 0, 1, 2, 3, 4, 5
N_STATS = 6

# lower byte of an event's flags: its kind (depth, trade, clear, snapshot, ...)
KIND_MASK = 0xFF


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", nargs="+", required=True, help="Binance USD-M ns captures (.gz)")
    p.add_argument("--tick", type=float, default=0.1, help="tick size (0.1)")
    p.add_argument("--lot", type=float, default=0.001, help="lot size (0.001)")
    p.add_argument("--half-spread-ticks", type=float, default=1.0, help="H (1)")
    p.add_argument("--order-qty", type=float, default=0.01, help="Q in base units (0.01)")
    p.add_argument("--requote-ms", type=float, default=100.0, help="R: quote period (100)")
    p.add_argument(
        "--latency-ms", type=float, default=1.0, help="order entry and response latency, each (1)"
    )
    p.add_argument("--queue", choices=("risk-averse", "prob"), default="risk-averse")
    p.add_argument("--maker-fee-bps", type=float, default=0.0)
    p.add_argument("--taker-fee-bps", type=float, default=0.0)
    args = p.parse_args(argv)
    for name in ("tick", "lot", "order_qty", "requote_ms"):
        if not getattr(args, name) > 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if not args.latency_ms >= 0 or not args.half_spread_ticks >= 0:
        p.error("--latency-ms and --half-spread-ticks must not be negative")
    return args


def convert(files: list[str]) -> np.ndarray:
    """All files' lines as ONE stream in one temporary .gz, converted once (one local-timestamp
    correction for the whole stream). hftbacktest's converter prints progress: kept off stdout."""
    tmpdir = tempfile.mkdtemp(prefix="hbt-oracle-")
    try:
        tmp = os.path.join(tmpdir, "stream.gz")
        raw = 0
        with gzip.open(tmp, "wb", compresslevel=1) as out:
            for f in files:
                with gzip.open(f, "rb") as src:
                    # the converter reads the first 19 characters as the local timestamp
                    first = src.readline()
                    if len(first.split(b" ", 1)[0]) != 19:
                        raise SystemExit(f"{f}: not a capture with nanosecond local timestamps")
                    raw += len(first)
                    out.write(first)
                    while chunk := src.read(1 << 20):
                        raw += len(chunk)
                        out.write(chunk)
        # a row is at least one `["p","q"]` pair (> 12 bytes): bounds the preallocated buffer
        with contextlib.redirect_stdout(sys.stderr):
            return binancefutures.convert(tmp, base_latency=0, buffer_size=raw // 12 + 1024)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def first_snapshot_local_ts(data: np.ndarray) -> int:
    """The local timestamp of the first DEPTH_SNAPSHOT event seen locally."""
    local = (data["ev"] & LOCAL_EVENT) == LOCAL_EVENT
    snap = local & ((data["ev"] & KIND_MASK) == DEPTH_SNAPSHOT_EVENT)
    if not snap.any():
        raise SystemExit("no depth snapshot in the data: nothing to quote from")
    return int(data["local_ts"][snap].min())


def build(data: np.ndarray, a: argparse.Namespace) -> Any:
    latency_ns = round(a.latency_ms * 1_000_000)
    asset = (
        BacktestAsset()
        .data(data)
        .linear_asset(1.0)
        .constant_order_latency(latency_ns, latency_ns)
        .no_partial_fill_exchange()
        .trading_value_fee_model(a.maker_fee_bps / 10_000, a.taker_fee_bps / 10_000)
        .tick_size(a.tick)
        .lot_size(a.lot)
    )
    if a.queue == "prob":
        asset = asset.power_prob_queue_model(3.0)
    else:
        asset = asset.risk_adverse_queue_model()
    return HashMapMarketDepthBacktest([asset])


@njit
def count_and_clear(hbt: Any, stats: np.ndarray) -> None:
    """Counts our orders that were filled (per side) or expired (post-only orders that would
    have crossed on arrival) and drops every inactive one."""
    values = hbt.orders(0).values()
    while values.has_next():
        order = values.get()
        if order.status == FILLED:
            if order.side == BUY:
                stats[S_BUYS] += 1
            else:
                stats[S_SELLS] += 1
        elif order.status == EXPIRED:
            stats[S_EXPIRED] += 1
    hbt.clear_inactive_orders(0)


@njit
def requote_side(
    hbt: Any, side: int, target: int, qty: float, tick: float, next_id: int, stats: np.ndarray
) -> int:
    """One order per side: keeps the live one at ``target``, else cancels it and submits a GTX
    order at ``target``; an order with a request in flight is left until its answer comes.
    Returns the next free order id."""
    live_id = -1
    live_tick = 0
    live_cancellable = False
    values = hbt.orders(0).values()
    while values.has_next():
        order = values.get()
        if order.side != side or order.req == CANCELED:
            continue  # the other side, or already being cancelled (replaced)
        live_id = order.order_id
        live_tick = order.price_tick
        live_cancellable = order.status == NEW and order.req == NONE
    if live_id >= 0:
        if live_tick == target or not live_cancellable:
            return next_id
        hbt.cancel(0, live_id, False)
    if side == BUY:
        hbt.submit_buy_order(0, next_id, target * tick, qty, GTX, LIMIT, False)
    else:
        hbt.submit_sell_order(0, next_id, target * tick, qty, GTX, LIMIT, False)
    stats[S_SUBMITTED] += 1
    return next_id + 1


@njit
def fixed_strategy(
    hbt: Any, start_ts: int, half: float, qty: float, requote_ns: int, stats: np.ndarray
) -> None:
    """Waits for the first snapshot, then every ``requote_ns``: bid = ⌊mid − H⌋, ask = ⌈mid + H⌉,
    never inside the touch, one GTX order of ``qty`` per side. Ends with the data."""
    if hbt.elapse(0) != 0:  # the first event's time: the clock starts there
        return
    if start_ts > hbt.current_timestamp and hbt.elapse(start_ts - hbt.current_timestamp) != 0:
        return
    tick = hbt.depth(0).tick_size
    next_id = 1
    while True:
        stats[S_STEPS] += 1
        count_and_clear(hbt, stats)
        depth = hbt.depth(0)
        best_bid = depth.best_bid_tick
        best_ask = depth.best_ask_tick
        if best_bid != INVALID_MIN and best_ask != INVALID_MAX:
            mid = (best_bid + best_ask) / 2.0
            stats[S_LAST_MID] = mid * tick
            bid = min(np.int64(np.floor(mid - half)), best_bid)
            ask = max(np.int64(np.ceil(mid + half)), best_ask)
            next_id = requote_side(hbt, BUY, bid, qty, tick, next_id, stats)
            next_id = requote_side(hbt, SELL, ask, qty, tick, next_id, stats)
        if hbt.elapse(requote_ns) != 0:
            break
    count_and_clear(hbt, stats)  # fills whose answers came with the last events
    depth = hbt.depth(0)
    if depth.best_bid_tick != INVALID_MIN and depth.best_ask_tick != INVALID_MAX:
        stats[S_LAST_MID] = (depth.best_bid_tick + depth.best_ask_tick) / 2.0 * tick


def run(a: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    data = convert(a.files)
    convert_s = time.perf_counter() - t0
    start_ts = first_snapshot_local_ts(data)
    requote_ns = round(a.requote_ms * 1_000_000)

    # compile the strategy on a small prefix first, so wall_s times the loop, not numba
    t0 = time.perf_counter()
    warm = data[: min(len(data), 20_000)].copy()
    hbt = build(warm, a)
    fixed_strategy(hbt, start_ts, a.half_spread_ticks, a.order_qty, requote_ns, np.zeros(N_STATS))
    hbt.close()
    compile_s = time.perf_counter() - t0

    stats = np.zeros(N_STATS)
    hbt = build(data, a)
    t0 = time.perf_counter()
    fixed_strategy(hbt, start_ts, a.half_spread_ticks, a.order_qty, requote_ns, stats)
    wall_s = time.perf_counter() - t0
    sv = hbt.state_values(0)
    position, balance, fees = float(sv.position), float(sv.balance), float(sv.fee)
    num_trades, volume = int(sv.num_trades), float(sv.trading_volume)
    hbt.close()

    buys, sells = int(stats[S_BUYS]), int(stats[S_SELLS])
    if buys + sells != num_trades:
        raise SystemExit(f"fills counted on orders ({buys + sells}) != hftbacktest's {num_trades}")
    last_mid = float(stats[S_LAST_MID])
    lot_round = round(-np.log10(a.lot)) + 2
    return {
        "fills": num_trades,
        "volume_base": round(volume, lot_round),
        "position_base": round(position, lot_round),
        "buys": buys,
        "sells": sells,
        "fees": fees,
        "balance": balance,
        "equity_quote": balance + position * last_mid,
        "equity_net_quote": balance + position * last_mid - fees,
        "last_mid": last_mid,
        "data_events": len(data),
        "orders_submitted": int(stats[S_SUBMITTED]),
        "post_only_rejects": int(stats[S_EXPIRED]),
        "requote_steps": int(stats[S_STEPS]),
        "start_local_ts": start_ts,
        "wall_s": round(wall_s, 4),
        "events_per_s": round(len(data) / wall_s) if wall_s > 0 else None,
        "convert_s": round(convert_s, 3),
        "compile_s": round(compile_s, 3),
        "files": [str(Path(f)) for f in a.files],
        "tick": a.tick,
        "lot": a.lot,
        "half_spread_ticks": a.half_spread_ticks,
        "order_qty": a.order_qty,
        "requote_ms": a.requote_ms,
        "latency_ms": a.latency_ms,
        "queue": a.queue,
        "maker_fee_bps": a.maker_fee_bps,
        "taker_fee_bps": a.taker_fee_bps,
    }


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    out = run(a)
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
