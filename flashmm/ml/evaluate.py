"""Held-out evaluation of the direction models: accuracy, accuracy on non-flat moves, F1
(macro) and calibration error per horizon for each model, all on the same windows, written
as a report directory (``report.json`` and PNG plots).

The trading effect of a signal (does quoting with it earn more?) is measured by the hot path
(``hotpath/signal_eval.py``); the command line, where the hot path and ML meet, adds it to the
report (``cli/ml.py``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from flashmm.ml.calibration import horizon_metrics, reliability, softmax
from flashmm.ml.dataset import Dataset, horizon_name
from flashmm.ml.schema import FeatureSchema
from flashmm.ml.train import gather, normalize, window_index

Predictor = Callable[[Tensor], Tensor]  # normalised (B, T, 64) -> logits (B, H, 3)


@dataclass
class EvalModel:
    """A model under evaluation: its predictor and the schema that normalises its input."""

    predict: Predictor
    schema: FeatureSchema


@dataclass
class EvalReport:
    """Scores per model and horizon, reliability bins, and the files written."""

    metrics: dict[str, dict[str, dict[str, float]]]
    reliability: dict[str, dict[str, dict[str, list[float]]]]
    horizons: list[str]
    out_dir: Path
    figures: dict[str, Path] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@torch.inference_mode()
def logits_on(
    model: EvalModel, data: Dataset, seq_len: int, batch: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """(logits (N, H, 3), labels (N, H)) over every full-history window of ``data``."""
    xn = torch.from_numpy(normalize(data.x, model.schema))
    idx = torch.from_numpy(window_index(data.ts, seq_len))
    parts = [
        model.predict(gather(xn, idx[i : i + batch], seq_len)).float()
        for i in range(0, len(idx), batch)
    ]
    logits = torch.cat(parts).numpy() if parts else np.empty((0, data.y.shape[1], 3))
    return logits, data.y[idx.numpy()]


def evaluate(
    models: dict[str, EvalModel],
    test: Dataset,
    seq_len: int,
    out_dir: str | Path,
    extra: dict[str, Any] | None = None,
) -> EvalReport:
    """Score every model on ``test`` (windows of ``seq_len``) and write the report."""
    horizons = [horizon_name(h) for h in test.horizons_s]
    metrics: dict[str, dict[str, dict[str, float]]] = {}
    rel: dict[str, dict[str, dict[str, list[float]]]] = {}
    for name, m in models.items():
        logits, labels = logits_on(m, test, seq_len)
        if len(labels) == 0:
            raise ValueError(f"no windows of {seq_len} rows in the test set")
        metrics[name] = horizon_metrics(logits, labels, horizons)
        probs = softmax(logits.astype(np.float64))
        rel[name] = {h: reliability(probs[:, j], labels[:, j]) for j, h in enumerate(horizons)}
    report = EvalReport(metrics, rel, horizons, Path(out_dir), extra=dict(extra or {}))
    write_report(report)
    return report


def _finite(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def write_report(report: EvalReport) -> None:
    """``report.json`` plus reliability (per horizon) and accuracy-by-horizon plots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = report.out_dir
    out.mkdir(parents=True, exist_ok=True)
    for h in report.horizons:
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect")
        for name, by_h in report.reliability.items():
            r = by_h[h]
            bins = zip(r["confidence"], r["accuracy"], r["count"], strict=True)
            pts = [(c, a) for c, a, n in bins if n > 0]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ece = report.metrics[name][h]["ece"]
                ax.plot(xs, ys, marker="o", ms=3, label=f"{name} (ECE {ece:.3f})")
        ax.set(xlabel="confidence (top class)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
        ax.set_title(f"reliability, {h}")
        ax.legend(fontsize=8)
        path = out / f"reliability_{h}.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        report.figures[f"reliability_{h}"] = path

    names = list(report.metrics)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.8 / max(1, len(names))
    x = np.arange(len(report.horizons))
    for ax, key, title in (
        (axes[0], "accuracy_moved", "direction accuracy on non-flat moves"),
        (axes[1], "f1_macro", "F1 (macro, 3 classes)"),
    ):
        for i, name in enumerate(names):
            vals = [report.metrics[name][h][key] for h in report.horizons]
            ax.bar(x + (i - (len(names) - 1) / 2) * width, vals, width, label=name)
        if key == "accuracy_moved":
            ax.axhline(0.5, color="grey", ls="--", lw=1)
        ax.set_xticks(x, report.horizons)
        ax.set_title(title)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
    path = out / "accuracy_by_horizon.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    report.figures["accuracy_by_horizon"] = path

    body = {
        "horizons": report.horizons,
        "metrics": report.metrics,
        "reliability": report.reliability,
        "figures": {k: p.name for k, p in report.figures.items()},
        **report.extra,
    }
    (out / "report.json").write_text(json.dumps(_finite(body), indent=2, sort_keys=True) + "\n")


REPORT_KEYS = ("accuracy", "accuracy_moved", "f1_macro", "nll", "ece", "n", "n_moved")
IMBALANCE = "logistic"


def no_change_model(train_y: np.ndarray) -> EvalModel:
    """The no-change baseline (always FLAT; training class frequencies as probabilities)."""
    from flashmm.ml.models import no_change

    return EvalModel(no_change(torch.from_numpy(train_y)), FeatureSchema())


def brief(metrics: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Only ``REPORT_KEYS`` per model and horizon."""
    return {
        m: {h: {k: v[k] for k in REPORT_KEYS} for h, v in by_h.items()}
        for m, by_h in metrics.items()
    }


def versus_imbalance(
    metrics: dict[str, dict[str, dict[str, float]]], model: str, key_horizon: str = "200ms"
) -> dict[str, Any]:
    """Does ``model`` beat the imbalance logistic baseline: lower ``nll`` and higher
    ``f1_macro`` at every horizon, higher ``accuracy_moved`` at ``key_horizon``?"""
    if IMBALANCE not in metrics or model not in metrics or model == IMBALANCE:
        return {}
    m, b = metrics[model], metrics[IMBALANCE]
    checks: dict[str, bool] = {}
    for h in m:
        checks[f"nll_{h}"] = m[h]["nll"] < b[h]["nll"]
        checks[f"f1_macro_{h}"] = m[h]["f1_macro"] > b[h]["f1_macro"]
    if key_horizon in m:
        checks[f"accuracy_moved_{key_horizon}"] = (
            m[key_horizon]["accuracy_moved"] > b[key_horizon]["accuracy_moved"]
        )
    return {"beats_all": all(checks.values()), "checks": checks}
