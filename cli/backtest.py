"""``flashmm backtest``: run a seeded session and print/write its figures and report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from flashmm.config import Settings
from flashmm.sim.params import PRESETS

POLICIES = ("none", "touch")


def add_arguments(b: argparse.ArgumentParser) -> None:
    """The generated market's own options (the replay's are in ``cli.replay``)."""
    b.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="default",
        help="simulated market preset; thin: a young on-chain book (default: default); "
        "the sim.market settings apply on top",
    )
    b.add_argument(
        "--policy",
        choices=POLICIES,
        default="none",
        help="touch: improve, join or stay behind the touch per side (docs/spread.md)",
    )
    b.add_argument(
        "--no-counterfactual",
        action="store_true",
        help="skip the run without us (no spread_improvement_pct)",
    )


def run_backtest_cmd(settings: Settings, args: argparse.Namespace) -> int:
    from flashmm.sim.params import market_preset
    from hotpath.backtest import BacktestConfig, run_backtest
    from hotpath.quoting.touch_policy import TouchPolicyConfig
    from hotpath.report import write_report

    m = settings.markets[0]
    inst = m.instrument()
    preset = getattr(args, "preset", "default")
    # the preset's values, then the sim.market settings, then this run's seed and price
    start = inst.price_to_ticks(m.start_price)
    market = market_preset(
        preset, **{**settings.sim.market, "seed": args.seed, "start_price": start}
    )
    cfg = BacktestConfig(
        minutes=args.minutes,
        quote_hz=settings.hotpath.quote_hz,
        market=market,
        venue=settings.sim.venue_params(),
        quoting=settings.quote_params(),
        limits=settings.risk_limits(),
        instrument=inst,
        policy=TouchPolicyConfig() if getattr(args, "policy", "none") == "touch" else None,
        counterfactual=not getattr(args, "no_counterfactual", False),
    )
    result = run_backtest(cfg)
    s = {"preset": preset, **result.summary}
    if not args.no_report:
        s["report"] = str(write_report(result, cfg, Path(args.report_dir)))
    title = f"backtest {inst.symbol}: {args.minutes:g} simulated minutes, seed {args.seed}"
    return print_summary(title, s, args.json)


def print_summary(title: str, s: dict[str, Any], as_json: bool) -> int:
    """A run's figures: one JSON object, or a titled aligned table."""
    if as_json:
        print(json.dumps(s, sort_keys=True))
        return 0
    width = max(len(k) for k in s)
    print(title)
    for k, v in s.items():
        shown = f"{v:,.4f}" if isinstance(v, float) else str(v)
        print(f"  {k:<{width}}  {shown}")
    return 0
