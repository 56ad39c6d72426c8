"""``flashmm backtest --data DIR``: replay an imported real-market store through the live engine.

The strategy, its size and spread come from the command line (for scripts and comparisons);
everything else about quoting comes from the settings. Risk limits: the settings' limits are
in the live markets' quote currency, so a replay builds its own from ``--max-position`` (base
units, converted at the recording's first mid) — see ``replay_limits``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flashmm.config import Settings
    from flashmm.marketdata.store import EventStore
    from hotpath.risk import RiskLimits

STRATEGIES = ("as", "glft", "fixed")


def add_arguments(b: argparse.ArgumentParser) -> None:
    g = b.add_argument_group("replay of recorded data (with --data)")
    g.add_argument("--data", metavar="DIR", help="an event store from `flashmm data import`")
    g.add_argument("--strategy", choices=STRATEGIES, default=None, help="default: settings")
    g.add_argument("--half-spread-ticks", type=float, default=None, help="fixed: h; as/glft: floor")
    g.add_argument("--order-qty", type=float, default=None, help="order size in base units")
    g.add_argument("--requote-ms", type=float, default=None, help="quote period (settings)")
    g.add_argument("--latency-ms", type=float, default=1.0, help="order entry and response, each")
    g.add_argument(
        "--feed-latency-ms",
        type=float,
        default=None,
        help="constant market-data latency (default: the recorded delay)",
    )
    g.add_argument("--queue", choices=("risk-averse", "prob"), default="risk-averse")
    g.add_argument("--queue-power", type=float, default=3.0, help="prob model exponent (3)")
    g.add_argument("--maker-fee-bps", type=float, default=0.0)
    g.add_argument("--taker-fee-bps", type=float, default=0.0)
    g.add_argument("--signal", metavar="MODEL_DIR", default=None, help="an exported model")
    g.add_argument("--max-position", type=float, default=None, help="base units (10 × order)")
    g.add_argument("--max-loss", type=float, default=None, help="quote units (5 %% of the cap)")
    g.add_argument("--no-reactive", action="store_true", help="requote on the clock only")


def first_mid(store: EventStore) -> float:
    """The recording's first two-sided mid in ticks (from its first snapshot)."""
    import numpy as np

    from flashmm.marketdata.store import SNAPSHOT, TRADE

    ev = store.events[:200_000]
    snap = ev[ev["kind"] == SNAPSHOT]
    bids = snap["price"][snap["side"] > 0]
    asks = snap["price"][snap["side"] < 0]
    if len(bids) and len(asks):
        return (float(bids.max()) + float(asks.min())) / 2
    trades = ev[ev["kind"] == TRADE]["price"]
    if len(trades):
        return float(np.asarray(trades)[0])
    raise ValueError(f"{store.path}: no snapshot or trade to price the risk limits from")


def replay_limits(
    settings: Settings, order_base: float, mid_px: float, max_position: float | None,
    max_loss: float | None,
) -> RiskLimits:  # fmt: skip
    """Limits in the recording's own units: position cap (base) at the first mid + 5 %."""
    from dataclasses import replace

    live = settings.risk_limits()
    cap_base = max_position if max_position is not None else 10 * order_base
    if not (math.isfinite(cap_base) and cap_base > 0):
        raise ValueError(f"--max-position must be a positive number, got {cap_base}")
    cap = cap_base * mid_px * 1.05
    order = order_base * mid_px * 1.05
    loss = max_loss if max_loss is not None else 0.05 * cap
    return replace(
        live,
        max_position_notional=cap,
        max_order_notional=max(order, 1e-9),
        max_open_notional=cap + 4 * order,
        daily_loss_limit=loss,
        max_drawdown=loss,
        vol_breaker_sigma=1e9,  # in ticks/√s it is instrument-specific: off unless asked for
    )


def run_replay_cmd(settings: Settings, args: argparse.Namespace) -> int:
    from dataclasses import replace

    from flashmm.config.quoting import QuoteModel
    from flashmm.marketdata.store import EventStore
    from hotpath.replay import ReplayConfig, run_replay, store_instrument
    from hotpath.report import write_replay_report

    store = EventStore.open(args.data)
    inst = store_instrument(store, args.maker_fee_bps, args.taker_fee_bps)
    mid = first_mid(store)
    mid_px = mid * inst.tick
    q = settings.quote_params()
    if args.strategy:
        q = replace(q, model=QuoteModel(args.strategy))
    if args.half_spread_ticks is not None:
        q = replace(q, min_half_spread_ticks=args.half_spread_ticks)
    if args.order_qty is not None:
        lots = inst.size_to_lots(args.order_qty)
        if lots <= 0:
            raise ValueError(f"--order-qty {args.order_qty} is below one lot ({inst.lot_size})")
        q = replace(q, order_lots=lots)
        order_base = lots * inst.lot
    else:
        order_base = max(1, int(q.order_notional / (mid_px * inst.lot))) * inst.lot
    if q.model is QuoteModel.FIXED:
        q = replace(q, levels=1)
    q = replace(q, max_half_spread_ticks=max(q.max_half_spread_ticks, q.min_half_spread_ticks))
    hz = 1000.0 / args.requote_ms if args.requote_ms else settings.hotpath.quote_hz
    cfg = ReplayConfig(
        quote_hz=hz,
        latency_ms=args.latency_ms,
        feed_latency_ms=args.feed_latency_ms,
        queue=args.queue,
        queue_power=args.queue_power,
        maker_fee_bps=args.maker_fee_bps,
        taker_fee_bps=args.taker_fee_bps,
        reactive=not args.no_reactive,
        quoting=q,
        limits=replay_limits(settings, order_base, mid_px, args.max_position, args.max_loss),
    )
    signal = _signal(args.signal) if args.signal else None
    result = run_replay(store, cfg, signal)
    s: dict[str, Any] = dict(result.summary)
    s["order_qty_base"] = order_base
    if not args.no_report:
        s["report"] = str(write_replay_report(result, inst, cfg, Path(args.report_dir)))
    from cli.backtest import print_summary

    title = f"replay {inst.symbol}: {s['minutes']:.1f} minutes of recorded data from {args.data}"
    return print_summary(title, s, args.json)


def _signal(path: str) -> Any:
    from hotpath.inference import ModelSignal, load_model

    return ModelSignal(load_model(path))
