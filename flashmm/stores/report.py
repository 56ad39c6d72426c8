"""Key figures from stored time series: spread improvement versus the market (percent) and
directional accuracy per horizon, by market and time window.

Reads raw points back through VictoriaMetrics' export API (``/api/v1/export``), where an
InfluxDB-protocol field ``f`` of measurement ``m`` is stored as the series ``m_f``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp


@dataclass(slots=True)
class MarketFigures:
    points: int = 0
    market_spread_bps: float = 0.0
    our_spread_bps: float = 0.0
    spread_improvement_pct: float = 0.0
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)


async def _export(
    http: aiohttp.ClientSession, url: str, match: str, start_s: float, end_s: float
) -> list[dict[str, Any]]:
    params = {"match[]": match, "start": f"{start_s:.3f}", "end": f"{end_s:.3f}"}
    async with http.get(f"{url}/api/v1/export", params=params) as r:
        r.raise_for_status()
        text = await r.text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def figures(
    url: str, start_s: float, end_s: float, market: str | None = None
) -> dict[str, MarketFigures]:
    sel = f',market="{market}"' if market else ""
    out: dict[str, MarketFigures] = defaultdict(MarketFigures)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        spreads: dict[str, dict[str, dict[int, float]]] = defaultdict(dict)
        for name in ("spread_bps", "our_spread_bps"):
            for s in await _export(
                http, url, f'{{__name__="trading_metrics_{name}"{sel}}}', start_s, end_s
            ):
                m = s["metric"]["market"]
                spreads[m].setdefault(name, {}).update(
                    zip(s["timestamps"], s["values"], strict=True)
                )
        for m, series in spreads.items():
            mkt = series.get("spread_bps", {})
            ours = series.get("our_spread_bps", {})
            common = sorted(set(mkt) & set(ours))
            f = out[m]
            f.points = len(common)
            if common:
                f.market_spread_bps = sum(mkt[t] for t in common) / len(common)
                f.our_spread_bps = sum(ours[t] for t in common) / len(common)
                if f.market_spread_bps:
                    f.spread_improvement_pct = (1 - f.our_spread_bps / f.market_spread_bps) * 100
        preds: dict[tuple[str, str], dict[str, dict[int, float]]] = defaultdict(dict)
        for name in ("predicted", "realised"):
            for s in await _export(
                http, url, f'{{__name__="ml_predictions_{name}"{sel}}}', start_s, end_s
            ):
                key = (s["metric"]["market"], s["metric"]["horizon"])
                preds[key].setdefault(name, {}).update(
                    zip(s["timestamps"], s["values"], strict=True)
                )
        for (m, horizon), series in preds.items():
            p = series.get("predicted", {})
            r = series.get("realised", {})
            both = [t for t in p if t in r]
            moved = [t for t in both if r[t] != 0]
            out[m].accuracy[horizon] = {
                "n": float(len(both)),
                "accuracy": sum(p[t] == r[t] for t in both) / len(both) if both else 0.0,
                "n_moved": float(len(moved)),
                "accuracy_moved": (sum(p[t] == r[t] for t in moved) / len(moved) if moved else 0.0),
            }
    return dict(out)
