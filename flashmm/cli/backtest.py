"""``flashmm backtest``: run a seeded session and print/write its figures and report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flashmm.config import Settings


def run_backtest_cmd(settings: Settings, args: argparse.Namespace) -> int:
    from hotpath.backtest import BacktestConfig, run_backtest
    from hotpath.report import write_report

    m = settings.markets[0]
    inst = m.instrument()
    cfg = BacktestConfig(
        minutes=args.minutes,
        quote_hz=settings.hotpath.quote_hz,
        market=settings.sim.market_params(
            seed=args.seed, start_price=inst.price_to_ticks(m.start_price)
        ),
        venue=settings.sim.venue_params(),
        quoting=settings.quote_params(),
        limits=settings.risk_limits(),
        instrument=inst,
    )
    result = run_backtest(cfg)
    s = dict(result.summary)
    if not args.no_report:
        s["report"] = str(write_report(result, cfg, Path(args.report_dir)))
    if args.json:
        print(json.dumps(s, sort_keys=True))
        return 0
    width = max(len(k) for k in s)
    print(f"backtest {inst.symbol}: {args.minutes:g} simulated minutes, seed {args.seed}")
    for k, v in s.items():
        shown = f"{v:,.4f}" if isinstance(v, float) else str(v)
        print(f"  {k:<{width}}  {shown}")
    return 0
