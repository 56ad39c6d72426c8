"""Spread improvement on the thin market preset: the touch policy over 10 seeds.

Each seed runs twice through the hot path's engine (``hotpath.backtest``): with us, and the
counterfactual without us (same seed, same schedule, engine disabled). The improvement is the
time-weighted touch spread with us against without us (``docs/spread.md``). Beside it, the
quote model alone (GLFT, no policy) on the same seeds, so the policy's share is visible.

Figures: ``spread.improvement_pct_mean|min``, ``spread.pnl_after_fees_mean|min`` (USDC, the
maker rebate included), ``spread.pnl_before_rebate_min`` (the same without the rebate),
``spread.seeds_positive`` (seeds with a positive PnL after fees), ``spread.limit_breaches``
(fills after which the position was over ``max_position_notional``), the spreads in bps with
and without us and ours, and ``spread.model_only_*`` for the model without the policy.
"""

from __future__ import annotations

from typing import Any

from flashmm.sim.params import market_preset
from hotpath.backtest import BacktestConfig, BacktestResult, run_backtest
from hotpath.quoting.touch_policy import TouchPolicyConfig


def limit_breaches(result: BacktestResult, limit: float, lot_value: float) -> int:
    """Fills after which |position| × fill price was over the position limit."""
    pos = 0
    n = 0
    for _, side, price, lots in result.fills:
        pos += side * lots
        if abs(pos) * price * lot_value > limit:
            n += 1
    return n


def _runs(seeds: list[int], minutes: float, policy: TouchPolicyConfig | None) -> list[Any]:
    rows = []
    for seed in seeds:
        cfg = BacktestConfig(
            minutes=minutes, market=market_preset("thin", seed=seed), policy=policy
        )
        r = run_backtest(cfg)
        s = r.summary
        breaches = limit_breaches(
            r, cfg.limits.max_position_notional, cfg.instrument.notional_per_tick_lot
        )
        rows.append((s, breaches))
    return rows


def bench_spread(seeds: int = 10, minutes: float = 10.0) -> dict[str, float]:
    seed_list = list(range(1, seeds + 1))
    rows = _runs(seed_list, minutes, TouchPolicyConfig())
    base = _runs(seed_list, minutes, None)

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs)

    imp = [s["spread_improvement_pct"] for s, _ in rows]
    pnl = [s["pnl_total"] for s, _ in rows]
    base_imp = [s["spread_improvement_pct"] for s, _ in base]
    base_pnl = [s["pnl_total"] for s, _ in base]
    return {
        "spread.seeds": float(seeds),
        "spread.minutes": float(minutes),
        "spread.improvement_pct_mean": mean(imp),
        "spread.improvement_pct_min": min(imp),
        "spread.pnl_after_fees_mean": mean(pnl),
        "spread.pnl_after_fees_min": min(pnl),
        "spread.pnl_before_rebate_min": min(s["pnl_total"] + s["fees"] for s, _ in rows),
        "spread.seeds_positive": float(sum(p > 0 for p in pnl)),
        "spread.limit_breaches": float(sum(b for _, b in rows)),
        "spread.max_position_notional": max(s["max_position_notional"] for s, _ in rows),
        "spread.market_bps_without_us_mean": mean(
            [s["market_spread_bps_without_us"] for s, _ in rows]
        ),
        "spread.market_bps_with_us_mean": mean([s["market_spread_bps_with_us"] for s, _ in rows]),
        "spread.our_quoted_bps_mean": mean([s["our_quoted_spread_bps"] for s, _ in rows]),
        "spread.fills_mean": mean([float(s["fills"]) for s, _ in rows]),
        "spread.max_drawdown_max": max(s["max_drawdown"] for s, _ in rows),
        "spread.model_only_improvement_pct_mean": mean(base_imp),
        "spread.model_only_improvement_pct_min": min(base_imp),
        "spread.model_only_pnl_after_fees_min": min(base_pnl),
        "spread.model_only_limit_breaches": float(sum(b for _, b in base)),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(bench_spread(), indent=2, sort_keys=True))
