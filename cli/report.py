"""``flashmm report``: the seed's key figures from the time-series store."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict

from flashmm.config import Settings


def run_report(settings: Settings, market: str | None, minutes: float, as_json: bool) -> int:
    from flashmm.stores.report import figures

    end = time.time()
    start = end - minutes * 60
    figs = asyncio.run(figures(settings.stores.timeseries_url, start, end, market))
    if as_json:
        print(json.dumps({m: asdict(f) for m, f in figs.items()}, sort_keys=True))
        return 0
    if not figs:
        print(f"no data in the last {minutes:g} minutes")
        return 0
    for m, f in sorted(figs.items()):
        print(
            f"{m}: {f.points} points; market spread {f.market_spread_bps:.2f} bps, ours "
            f"{f.our_spread_bps:.2f} bps, improvement {f.spread_improvement_pct:+.1f}%"
        )
        for h, a in sorted(f.accuracy.items()):
            print(
                f"  {h}: accuracy {a['accuracy']:.1%} (n={a['n']:.0f}); on moves "
                f"{a['accuracy_moved']:.1%} (n={a['n_moved']:.0f})"
            )
    return 0
