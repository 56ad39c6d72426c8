"""``flashmm train`` and ``flashmm evaluate``: train a direction model on seeded simulated
sessions, or with ``--data`` on imported real-market stores, and export it with its card;
evaluate an exported model against the baselines (trained on the same data, regenerated from
the card) on held-out seeds or, with ``--data``, on held-out real recordings (see
``docs/ml-real-data.md``).

Only argparse is imported at module level, so ``cli.main`` can add the arguments
without loading numpy/torch."""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flashmm.config import Settings
    from flashmm.ml.dataset import Dataset
    from flashmm.sim.params import MarketParams

KINDS = ("transformer", "mlp", "logistic")
BASELINES = ("mlp", "logistic")
SAMPLE_S = 0.2


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kind", choices=KINDS, default="transformer", help="model (transformer)")
    p.add_argument("--seeds", default="1-8", help="simulated sessions to train on (1-8)")
    p.add_argument("--minutes", type=float, default=30.0, help="minutes per session (30)")
    p.add_argument("--epochs", type=int, default=20, help="maximum epochs (20)")
    p.add_argument("--seed", type=int, default=0, help="training seed (0)")
    p.add_argument("--out", required=True, metavar="DIR", help="artifact directory")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--patience", type=int, default=4, help="early-stopping patience (4)")
    p.add_argument("--seq-len", type=int, default=32)
    p.add_argument("--val-frac", type=float, default=0.15, help="last part kept for validation")
    p.add_argument("--dead-band", type=float, default=0.0, metavar="TICKS", help="flat band")
    p.add_argument("--weighted", action="store_true", help="class-weighted cross-entropy")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: up to 8)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    g = p.add_argument_group("real data (with --data)")
    g.add_argument("--data", nargs="+", metavar="DIR", help="event stores to train on")
    g.add_argument("--sample-ms", type=int, default=100, help="sample step, local clock (100)")
    g.add_argument("--phases", type=int, default=1,
                   help="interleaved sample grids, each every --sample-ms (1)")  # fmt: skip
    g.add_argument("--residual", action="store_true",
                   help="mlp: wide path fitted first, frozen; deep path corrects it")  # fmt: skip
    g.add_argument(
        "--test-frac", type=float, default=0.25, help="last part of each store, held out (0.25)"
    )
    g.add_argument("--gap-s", type=float, default=10.0, help="gap between splits (10 s)")
    _real_common(g)
    g.add_argument("--inputs", choices=("all", "tick-free"), default=None,
                   help="mlp inputs (tick-free on --data)")  # fmt: skip
    g.add_argument("--wide", default=None, metavar="NAMES",
                   help="mlp linear path (imb_1,imb_3,imb_5 on --data; none)")  # fmt: skip
    for name, default in (("d-model", 64), ("layers", 2), ("heads", 4), ("ff", 128)):
        g.add_argument(
            f"--{name}",
            type=int,
            default=None,
            help=f"transformer size ({default} on --data; the model's default on simulator data)",
        )


def _real_common(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--feed-latency-ms", type=float, default=None,
        help="constant feed latency for the features (default: the recorded delay)",
    )  # fmt: skip


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="DIR", help="artifact directory")
    p.add_argument("--seeds", default="101-104", help="held-out sessions (101-104)")
    p.add_argument("--minutes", type=float, default=20.0, help="minutes per session (20)")
    p.add_argument("--out", default="reports/eval", metavar="DIR", help="report directory")
    p.add_argument("--baseline-epochs", type=int, default=None, help="default: the model's")
    p.add_argument("--no-trading", action="store_true", help="skip the trading-effect backtest")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: up to 8)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    g = p.add_argument_group("real data (with --data)")
    g.add_argument("--data", nargs="+", metavar="DIR", help="event stores to evaluate on")
    g.add_argument("--train-data", nargs="+", metavar="DIR", help="the card's training stores")
    g.add_argument("--kinds", default=None, help="models to retrain beside it (the other kinds)")
    g.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    g.add_argument("--trading", action="store_true", help="replay each store, signal on vs off")
    g.add_argument("--record", action="store_true", help="write the results into the card")
    g.add_argument("--signal-min-confidence", type=float, default=None,
                   help="--trading: quoting's signal gate (default: settings)")  # fmt: skip
    g.add_argument("--signal-skew-ticks", type=float, default=None,
                   help="--trading: quoting's signal skew (default: settings)")  # fmt: skip
    _real_common(g)


def _log(args: argparse.Namespace, msg: str) -> None:
    if not args.quiet:
        print(msg, file=sys.stderr, flush=True)


def fingerprint(d: Dataset) -> str:
    h = hashlib.sha256(d.x.tobytes())
    h.update(d.y.tobytes())
    return h.hexdigest()[:16]


def generate(
    seeds: list[int],
    minutes: float,
    params: MarketParams,
    dead_band: float,
    args: Any,
    sample_s: float = SAMPLE_S,
) -> Dataset:
    from flashmm.ml.dataset import Dataset, simulate

    parts = []
    for s in seeds:
        _log(args, f"simulating seed {s}: {minutes:g} min")
        parts.append(
            simulate(s, minutes, params=params, sample_s=sample_s, dead_band_ticks=dead_band)
        )
    return Dataset.concat(parts)


def _params(settings: Settings) -> MarketParams:
    m = settings.markets[0]
    start = m.instrument().price_to_ticks(m.start_price)
    return settings.sim.market_params(start_price=start)


def run_train(settings: Settings, args: argparse.Namespace) -> int:
    from flashmm.ml.export import export
    from flashmm.ml.train import train

    if not 0.0 < args.val_frac < 1.0:
        raise ValueError("--val-frac must be between 0 and 1")
    if args.data:
        from cli.ml_real import run_train_real

        return run_train_real(args)
    from flashmm.ml.dataset import parse_seeds

    seeds = parse_seeds(args.seeds)
    sizes = _sim_model_kwargs(args)
    params = _params(settings)
    data = generate(seeds, args.minutes, params, args.dead_band, args)
    tr, va = data.split(1.0 - args.val_frac)
    result = train(
        tr, va, args.kind, seed=args.seed, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, patience=args.patience, seq_len=args.seq_len, device=args.device,
        weighted=args.weighted, threads=args.threads, quiet=args.quiet, model_kwargs=sizes,
    )  # fmt: skip
    market = params.as_dict()
    market.pop("seed")
    data_range = {
        "source": "sim",
        "seeds": seeds,
        "minutes": args.minutes,
        "sample_s": SAMPLE_S,
        "dead_band_ticks": args.dead_band,
        "val_frac": args.val_frac,
        "market_params": market,
        "rows": len(data),
        "train_rows": len(tr),
        "val_rows": len(va),
        "fingerprint": fingerprint(data),
    }
    out = export(result, args.out, data_range)
    from flashmm.ml.export import load

    card = load(out, optimized=False).card
    print(f"{card['version']} -> {out}")
    print(f"  trained on seeds {args.seeds} x {args.minutes:g} min ({len(tr)} rows train, "
          f"{len(va)} val), best epoch {result.best_epoch}/{len(result.history)}")  # fmt: skip
    _print_metrics({result.kind: result.metrics}, result.horizons)
    lat = card["latency"]
    print(f"  latency (1,{result.seq_len},64), 1 thread: p50 {lat['p50_us']:.0f} µs, "
          f"p99 {lat['p99_us']:.0f} µs")  # fmt: skip
    return 0


_SIZES = {"d_model": "--d-model", "layers": "--layers", "heads": "--heads", "ff": "--ff"}
_REAL_ONLY = {"inputs": "--inputs", "wide": "--wide", "residual": "--residual"}


def _sim_model_kwargs(args: argparse.Namespace) -> dict[str, Any] | None:
    """The transformer sizes given on the command line (the model's own defaults for the
    rest) for simulator data; real-data-only options are refused, never silently ignored."""
    given = [flag for k, flag in _REAL_ONLY.items() if getattr(args, k, None) not in (None, False)]
    if given:
        raise ValueError(f"{', '.join(given)}: only with --data (real recordings)")
    sizes = {k: v for k in _SIZES if (v := getattr(args, k, None)) is not None}
    if sizes and args.kind != "transformer":
        flags = ", ".join(_SIZES[k] for k in sizes)
        raise ValueError(f"{flags}: transformer sizes, not for --kind {args.kind}")
    return sizes or None


def _print_metrics(metrics: dict[str, dict[str, dict[str, float]]], horizons: list[str]) -> None:
    print(f"  {'model':<12}{'horizon':>8}{'acc':>8}{'acc_moved':>11}{'f1':>8}{'ece':>8}")
    for name, by_h in metrics.items():
        for h in horizons:
            m = by_h[h]
            print(f"  {name:<12}{h:>8}{m['accuracy']:>8.3f}{m['accuracy_moved']:>11.3f}"
                  f"{m['f1_macro']:>8.3f}{m['ece']:>8.3f}")  # fmt: skip


def trading_effect(artifact_path: str | Path, seeds: list[int], minutes: float) -> dict[str, Any]:
    """The signal's effect on quoting P&L: the same seeded backtests with the signal off and on
    (``hotpath.signal_eval``); a failure there is reported in the result, not raised."""
    from hotpath import signal_eval

    try:
        return dict(signal_eval.trading_effect(str(artifact_path), list(seeds), minutes))
    except Exception as e:
        return {"skipped": True, "note": f"hotpath.signal_eval failed: {e!r}"}


def run_evaluate(settings: Settings, args: argparse.Namespace) -> int:
    from flashmm.ml.evaluate import EvalModel, evaluate
    from flashmm.ml.export import load
    from flashmm.ml.train import train

    if args.data:
        from cli.ml_real import run_evaluate_real

        return run_evaluate_real(settings, args)
    del settings  # the card's data range, not the current settings, defines the market
    model = load(args.model)
    card = model.card
    dr = card["data_range"]
    if dr.get("source") != "sim":
        raise ValueError(f"cannot regenerate training data of source {dr.get('source')!r}")
    from flashmm.ml.dataset import parse_seeds

    test_seeds = parse_seeds(args.seeds)
    overlap = set(test_seeds) & set(dr["seeds"])
    if overlap:
        raise ValueError(f"held-out seeds {sorted(overlap)} were used for training")
    from flashmm.sim.params import MarketParams

    params = MarketParams(**dr["market_params"])
    sample_s = float(dr["sample_s"])
    data = generate(dr["seeds"], dr["minutes"], params, dr["dead_band_ticks"], args, sample_s)
    notes: list[str] = []
    if fingerprint(data) != dr.get("fingerprint"):
        notes.append("regenerated training data differs from the card's fingerprint")
        _log(args, f"warning: {notes[-1]}")
    tr, va = data.split(1.0 - float(dr["val_frac"]))
    cfg = card["train_config"]
    models = {card["kind"]: EvalModel(model, model.schema)}
    for kind in (k for k in BASELINES if k != card["kind"]):
        res = train(
            tr, va, kind, seed=int(cfg["seed"]),
            epochs=args.baseline_epochs or int(cfg["epochs"]),
            batch_size=int(cfg["batch_size"]), lr=float(cfg["lr"]),
            patience=int(cfg["patience"]), seq_len=model.seq_len, device=args.device,
            weight_decay=float(cfg.get("weight_decay", 1e-2)),
            weighted=bool(cfg.get("weighted", False)), threads=args.threads, quiet=args.quiet,
        )  # fmt: skip
        models[kind] = EvalModel(res.calibrated(), res.schema)
    test = generate(test_seeds, args.minutes, params, dr["dead_band_ticks"], args, sample_s)
    effect: dict[str, Any] = (
        {"skipped": True, "note": "--no-trading"}
        if args.no_trading
        else trading_effect(Path(args.model), test_seeds, args.minutes)
    )
    extra = {
        "model": {"path": str(args.model), "version": card["version"], "kind": card["kind"]},
        "test": {"seeds": test_seeds, "minutes": args.minutes, "rows": len(test)},
        "trading_effect": effect,
        "notes": notes,
    }
    report = evaluate(models, test, model.seq_len, args.out, extra)
    print(f"evaluation of {card['version']} on seeds {args.seeds} x {args.minutes:g} min")
    _print_metrics(report.metrics, report.horizons)
    if effect.get("skipped"):
        print(f"  trading effect: skipped ({effect.get('note')})")
    print(f"  report: {report.out_dir / 'report.json'}")
    return 0
