"""The trading effect of a model: the same seeded backtests with the signal off and on."""

from __future__ import annotations

from typing import Any

from flashmm.sim.params import MarketParams
from hotpath.backtest import BacktestConfig, run_backtest
from hotpath.engine import Signal


def compare(signal_factory: Any, seeds: list[int], minutes: float) -> dict[str, Any]:
    """Per seed and in total: PnL, spread improvement and fills with and without the signal.

    ``signal_factory()`` returns a fresh signal per run (signals keep state)."""
    rows = []
    for seed in seeds:
        cfg = BacktestConfig(minutes=minutes, market=MarketParams(seed=seed))
        off = run_backtest(cfg).summary
        on_signal: Signal = signal_factory()
        on = run_backtest(cfg, on_signal).summary
        rows.append(
            {
                "seed": seed,
                "pnl_off": off["pnl_total"],
                "pnl_on": on["pnl_total"],
                "improvement_pct_off": off["spread_improvement_pct"],
                "improvement_pct_on": on["spread_improvement_pct"],
                "fills_off": off["fills"],
                "fills_on": on["fills"],
                "max_drawdown_off": off["max_drawdown"],
                "max_drawdown_on": on["max_drawdown"],
            }
        )
    n = len(rows) or 1
    return {
        "seeds": seeds,
        "minutes": minutes,
        "runs": rows,
        "pnl_off": sum(r["pnl_off"] for r in rows),
        "pnl_on": sum(r["pnl_on"] for r in rows),
        "improvement_pct_off": sum(r["improvement_pct_off"] for r in rows) / n,
        "improvement_pct_on": sum(r["improvement_pct_on"] for r in rows) / n,
        "seeds_better_on": sum(r["pnl_on"] > r["pnl_off"] for r in rows),
    }


def trading_effect(artifact_path: str, seeds: list[int], minutes: float) -> dict[str, Any]:
    """Backtests with the exported model at ``artifact_path`` against the signal off."""
    from hotpath.inference import ModelSignal, load_model

    model = load_model(artifact_path)
    return compare(lambda: ModelSignal(model), seeds, minutes)
