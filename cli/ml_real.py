"""``flashmm train --data`` and ``flashmm evaluate --data``: direction models on imported
real-market stores (``flashmm/ml/realdata.py``), split by time per recording; evaluation on
the held-out tail of each training recording and on recordings never trained on, against the
imbalance logistic and no-change baselines, optionally with the trading effect on replays.

Split from ``cli/ml.py`` (which dispatches here) to keep modules short."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flashmm.config import Settings
    from flashmm.marketdata.store import EventStore
    from flashmm.ml.evaluate import EvalModel
    from flashmm.ml.train import TrainResult

KINDS = ("transformer", "mlp", "logistic")
TRANSFORMER_REAL = {"d_model": 64, "layers": 2, "heads": 4, "ff": 128}


def _log(args: argparse.Namespace, msg: str) -> None:
    if not getattr(args, "quiet", False):
        print(msg, file=sys.stderr, flush=True)


def _feed_ns(ms: float | None) -> int | None:
    return None if ms is None else round(ms * 1e6)


def _transformer_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kw = dict(TRANSFORMER_REAL)
    for k in kw:
        v = getattr(args, k, None)
        if v is not None:
            kw[k] = v
    return kw


def _mlp_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    from flashmm.ml.realdata import IMBALANCE_WIDE, TICK_FREE

    kw: dict[str, Any] = {}
    if getattr(args, "inputs", None) != "all":
        kw["inputs"] = TICK_FREE
    wide = getattr(args, "wide", None)
    if wide is None:
        kw["wide"] = IMBALANCE_WIDE
    elif wide != "none":
        kw["wide"] = tuple(n.strip() for n in wide.split(",") if n.strip())
    return kw


def _train(
    kind: str, tr: Any, va: Any, cfg: dict[str, Any], args: argparse.Namespace
) -> TrainResult:
    from flashmm.ml.train import train

    kwargs = dict(cfg.get("model_kwargs") or {}) if kind == cfg.get("kind") else {}
    if kind == "transformer" and not kwargs:
        kwargs = _transformer_kwargs(args)
    if kind == "mlp" and not kwargs:
        kwargs = _mlp_kwargs(args)
    for k in ("inputs", "wide"):  # from a card's JSON: lists back to tuples
        if isinstance(kwargs.get(k), list):
            kwargs[k] = tuple(kwargs[k])
    return train(
        tr, va, kind, seed=int(cfg["seed"]), epochs=int(cfg["epochs"]),
        batch_size=int(cfg["batch_size"]), lr=float(cfg["lr"]), patience=int(cfg["patience"]),
        seq_len=int(cfg["seq_len"]), device=args.device,
        weight_decay=float(cfg.get("weight_decay", 1e-2)), weighted=bool(cfg.get("weighted")),
        model_kwargs=kwargs, threads=args.threads, quiet=args.quiet,
        residual=bool(cfg.get("residual")) and kind == "mlp",
    )  # fmt: skip


def run_train_real(args: argparse.Namespace) -> int:
    from flashmm.marketdata.store import EventStore
    from flashmm.ml.export import export, load
    from flashmm.ml.realdata import Splits, fingerprint, store_info, training_sets

    splits = Splits(args.val_frac, args.test_frac, args.gap_s)
    stores = [EventStore.open(p) for p in args.data]
    feed = _feed_ns(args.feed_latency_ms)
    t0 = time.perf_counter()
    tr, va, ranges = training_sets(stores, splits, args.sample_ms, feed, args.phases)
    t_data = time.perf_counter() - t0
    cfg = {
        "seed": args.seed, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "patience": args.patience, "seq_len": args.seq_len, "weighted": args.weighted,
        "residual": args.residual,
    }  # fmt: skip
    _log(args, f"{len(tr)} training rows, {len(va)} validation rows ({t_data:.1f} s)")
    t1 = time.perf_counter()
    result = _train(args.kind, tr, va, cfg, args)
    t_train = time.perf_counter() - t1
    data_range = {
        "source": "real",
        "stores": [store_info(s) for s in stores],
        "sample_ms": args.sample_ms,
        "phases": args.phases,
        "feed_latency_ms": args.feed_latency_ms,
        "feed_latency": "recorded" if feed is None else f"{args.feed_latency_ms:g} ms",
        "label": "sign(exchange mid(t+h) - local mid(t)), dead band 0",
        "splits": splits.to_json(),
        "split_ranges": ranges,
        "train_rows": len(tr),
        "val_rows": len(va),
        "fingerprint": fingerprint(tr),
        "dataset_s": round(t_data, 1),
        "train_s": round(t_train, 1),
        "threads": args.threads,
    }
    out = export(result, args.out, data_range)
    card = load(out, optimized=False).card
    print(f"{card['version']} -> {out}")
    print(f"  trained on {', '.join(Path(p).name for p in args.data)}: {len(tr)} rows train, "
          f"{len(va)} val, best epoch {result.best_epoch}/{len(result.history)}, "
          f"{t_train:.0f} s")  # fmt: skip
    _table({result.kind: result.metrics}, result.horizons)
    return 0


def _table(metrics: dict[str, dict[str, dict[str, float]]], horizons: list[str]) -> None:
    print(f"  {'model':<12}{'horizon':>8}{'acc':>7}{'acc_mv':>8}{'f1':>7}{'nll':>8}{'ece':>7}"
          f"{'n':>7}{'n_mv':>6}")  # fmt: skip
    for name, by_h in metrics.items():
        for h in horizons:
            m = by_h[h]
            print(f"  {name:<12}{h:>8}{m['accuracy']:>7.3f}{m['accuracy_moved']:>8.3f}"
                  f"{m['f1_macro']:>7.3f}{m['nll']:>8.4f}{m['ece']:>7.3f}{m['n']:>7.0f}"
                  f"{m['n_moved']:>6.0f}")  # fmt: skip


def _training_stores(card: dict[str, Any], args: argparse.Namespace) -> list[EventStore]:
    from flashmm.marketdata.store import EventStore

    dr = card["data_range"]
    want = [s["events_sha256"] for s in dr["stores"]]
    paths = args.train_data or [s["path"] for s in dr["stores"]]
    found: dict[str, EventStore] = {}
    for p in paths:
        if Path(p).is_dir():
            s = EventStore.open(p)
            found[str(s.manifest.to_json().get("events_sha256"))] = s
    missing = [s["name"] for s in dr["stores"] if s["events_sha256"] not in found]
    if missing:
        raise ValueError(
            f"training stores {missing} not found: import them again and pass --train-data"
        )
    return [found[w] for w in want]


def run_evaluate_real(settings: Settings, args: argparse.Namespace) -> int:
    from flashmm.marketdata.store import EventStore
    from flashmm.ml.evaluate import EvalModel, brief, evaluate, no_change_model, versus_imbalance
    from flashmm.ml.export import load
    from flashmm.ml.realdata import Splits, fingerprint, held_out, training_sets

    model = load(args.model)
    card = model.card
    dr = card["data_range"]
    if dr.get("source") != "real":
        raise ValueError("--data evaluates a model trained with --data (card source 'real')")
    splits = Splits(**dr["splits"])
    sample_ms = int(dr["sample_ms"])
    phases = int(dr.get("phases", 1))
    feed_ms = args.feed_latency_ms if args.feed_latency_ms is not None else dr["feed_latency_ms"]
    train_stores = _training_stores(card, args)
    tr, va, _ = training_sets(
        train_stores, splits, sample_ms, _feed_ns(dr["feed_latency_ms"]), phases
    )
    notes: list[str] = []
    if fingerprint(tr) != dr.get("fingerprint"):
        notes.append("rebuilt training data differs from the card's fingerprint")
        _log(args, f"warning: {notes[-1]}")
    cfg = {**card["train_config"], "seq_len": model.seq_len, "kind": card["kind"]}
    if args.baseline_epochs:
        cfg["epochs"] = args.baseline_epochs
    kinds = args.kinds.split(",") if args.kinds else [k for k in KINDS if k != card["kind"]]
    models: dict[str, EvalModel] = {card["kind"]: EvalModel(model, model.schema)}
    for kind in (k for k in kinds if k and k != card["kind"]):
        _log(args, f"training the {kind} baseline")
        res = _train(kind, tr, va, cfg, args)
        models[kind] = EvalModel(res.calibrated(), res.schema)
    models["no-change"] = no_change_model(tr.y)
    trained_on = {str(s["events_sha256"]) for s in dr["stores"]}
    sets: dict[str, Any] = {}
    for p in args.data:
        store = EventStore.open(p)
        test, role = held_out(store, trained_on, splits, sample_ms, _feed_ns(feed_ms), phases)
        name = Path(p).name + (f"-feed-{feed_ms:g}ms" if args.feed_latency_ms is not None else "")
        extra = {"role": role, "store": test.meta, "notes": notes}
        rep = evaluate(models, test, model.seq_len, Path(args.out) / name, extra)
        sets[name] = {
            "role": role,
            "symbol": test.meta.get("symbol"),
            "first_utc": test.meta.get("first_utc"),
            "rows": len(test),
            "metrics": brief(rep.metrics),
            "versus_imbalance": versus_imbalance(rep.metrics, card["kind"]),
        }
        if args.trading:
            sets[name]["trading"] = _trading(settings, store, args, sample_ms, feed_ms)
    body = {
        "model": {"path": str(args.model), "version": card["version"], "kind": card["kind"]},
        "feed_latency": "recorded" if feed_ms is None else f"{feed_ms:g} ms",
        "sets": sets,
        "notes": notes,
    }
    if args.record:
        _record(Path(args.model), body)
    if args.json:
        from flashmm.ml.evaluate import _finite

        print(json.dumps(_finite(body), sort_keys=True))
        return 0
    for name, s in sets.items():
        print(f"{name} ({s['symbol']}, {s['role']}): {s['rows']} rows")
        _table(s["metrics"], list(next(iter(s["metrics"].values()))))
        v = s["versus_imbalance"]
        if v:
            lost = [k for k, ok in v["checks"].items() if not ok]
            print(f"  beats the imbalance baseline: {v['beats_all']}"
                  + (f" (not on {', '.join(lost)})" if lost else ""))  # fmt: skip
        if "trading" in s:
            t = s["trading"]
            for side in ("off", "on"):
                f = t[side]
                print(f"  signal {side:>3}: pnl {f['pnl_total']:.2f}, fills {f['fills']}, "
                      f"adverse 100/500 ms {f.get('adverse_100ms_ticks', 0):.3f}/"
                      f"{f.get('adverse_500ms_ticks', 0):.3f} ticks, inventory "
                      f"{f['inventory_mean_lots']:.1f}±{f['inventory_std_lots']:.1f}")  # fmt: skip
    return 0


def _record(model_dir: Path, body: dict[str, Any]) -> None:
    from flashmm.ml.evaluate import _finite

    path = model_dir / "card.json"
    card = json.loads(path.read_text())
    old = card.get("evaluation") or {}
    sets = {**old.get("sets", {}), **body["sets"]}  # a later run adds or replaces sets
    card["evaluation"] = _finite({**body, "sets": sets})
    path.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")


def _trading(
    settings: Settings, store: EventStore, args: argparse.Namespace, sample_ms: int,
    feed_ms: float | None,
) -> dict[str, Any]:  # fmt: skip
    """Signal off vs on, quoting every ``sample_ms`` (the cadence the model was trained at)."""
    from dataclasses import replace

    from cli.replay import first_mid, replay_limits
    from hotpath.inference import ModelSignal, load_model
    from hotpath.replay import ReplayConfig, store_instrument
    from hotpath.replay_effect import trading_effect

    inst = store_instrument(store, 0.0, 0.0)
    mid_px = first_mid(store) * inst.tick
    q = settings.quote_params()
    order_base = max(1, int(q.order_notional / (mid_px * inst.lot))) * inst.lot
    q = replace(q, max_half_spread_ticks=max(q.max_half_spread_ticks, q.min_half_spread_ticks))
    if args.signal_min_confidence is not None:
        q = replace(q, signal_min_confidence=args.signal_min_confidence)
    if args.signal_skew_ticks is not None:
        q = replace(q, signal_skew_ticks=args.signal_skew_ticks)
    cfg = ReplayConfig(
        quote_hz=1000.0 / sample_ms,
        feed_latency_ms=feed_ms,
        quoting=q,
        limits=replay_limits(settings, order_base, mid_px, None, None),
    )
    _log(args, f"trading effect on {store.path}")
    out = trading_effect(store, cfg, ModelSignal(load_model(str(args.model))))
    out["order_qty_base"] = order_base
    out["signal"] = {
        "horizon_s": 0.2,
        "min_confidence": q.signal_min_confidence,
        "skew_ticks": q.signal_skew_ticks,
    }
    return out
