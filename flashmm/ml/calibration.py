"""Calibration and scoring of the direction models.

* ``fit_temperature``: one temperature per horizon fitted on validation logits (LBFGS on
  the negative log-likelihood of log T, so T stays positive);
* ``expected_calibration_error`` / ``reliability``: top-label calibration in 15 equal-width
  confidence bins (Guo et al., 2017);
* ``horizon_metrics``: the scores every model is reported with, per horizon.

"Accuracy on non-flat moves" (``accuracy_moved``) is the direction call on the samples whose
mid did move: the larger of P(UP) and P(DOWN) against the true direction (chance = 0.5).
``accuracy_moved_3class`` counts a FLAT prediction on such a sample as wrong.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from flashmm.ml.dataset import DOWN, FLAT, UP

N_BINS = 15
_T_MIN, _T_MAX = 0.05, 20.0


def fit_temperature(logits: Tensor, labels: Tensor, max_iter: int = 100) -> Tensor:
    """Per-horizon temperatures (H,) minimising NLL of ``logits / T`` (logits (N, H, 3),
    labels (N, H))."""
    logits = logits.detach().float().cpu()
    labels = labels.detach().long().cpu()
    out = torch.ones(logits.shape[1])
    for h in range(logits.shape[1]):
        t = _fit_one(logits[:, h], labels[:, h], max_iter)
        out[h] = min(max(t, _T_MIN), _T_MAX) if math.isfinite(t) else 1.0
    return out


def _fit_one(z: Tensor, y: Tensor, max_iter: int) -> float:
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    opt.step(closure)  # type: ignore[no-untyped-call]
    return float(log_t.detach().exp())


def nll(logits: Tensor, labels: Tensor) -> list[float]:
    """Mean negative log-likelihood per horizon."""
    return [
        float(torch.nn.functional.cross_entropy(logits[:, h].float(), labels[:, h].long()))
        for h in range(logits.shape[1])
    ]


def _bins(conf: np.ndarray, n_bins: int) -> np.ndarray:
    # bin b holds confidences in (b/n, (b+1)/n]; a confidence of exactly 0 goes to bin 0
    b: np.ndarray = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    return b


def reliability(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS
) -> dict[str, list[float]]:
    """Per confidence bin: centre, mean confidence, accuracy and count (probs (N, C),
    labels (N,)). Empty bins have NaN confidence/accuracy."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    b = _bins(conf, n_bins)
    count = np.bincount(b, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(b, weights=conf, minlength=n_bins) / count
        acc = np.bincount(b, weights=correct, minlength=n_bins) / count
    return {
        "centre": [(i + 0.5) / n_bins for i in range(n_bins)],
        "confidence": mean_conf.tolist(),
        "accuracy": acc.tolist(),
        "count": count.tolist(),
    }


def expected_calibration_error(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS
) -> float:
    """ECE = sum over bins of (n_b / N) * |accuracy_b - confidence_b|."""
    r = reliability(probs, labels, n_bins)
    n = float(sum(r["count"]))
    if n == 0:
        return float("nan")
    return float(
        sum(
            c / n * abs(a - m)
            for c, a, m in zip(r["count"], r["accuracy"], r["confidence"], strict=True)
            if c > 0
        )
    )


def f1_macro(pred: np.ndarray, labels: np.ndarray, n_classes: int = 3) -> float:
    """Unweighted mean of the per-class F1 (a class never predicted nor present scores 0)."""
    f1s = []
    for c in range(n_classes):
        tp = float(np.sum((pred == c) & (labels == c)))
        fp = float(np.sum((pred == c) & (labels != c)))
        fn = float(np.sum((pred != c) & (labels == c)))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(f1s))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e: np.ndarray = np.exp(z)
    out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return out


def horizon_metrics(
    logits: np.ndarray, labels: np.ndarray, horizons: list[str]
) -> dict[str, dict[str, float]]:
    """Scores per horizon name from logits (N, H, 3) and labels (N, H)."""
    probs = softmax(logits.astype(np.float64))
    out: dict[str, dict[str, float]] = {}
    for h, name in enumerate(horizons):
        p, y = probs[:, h], labels[:, h]
        pred = p.argmax(axis=1)
        moved = y != FLAT
        direction = np.where(p[:, UP] > p[:, DOWN], UP, DOWN)
        n_moved = int(moved.sum())
        out[name] = {
            "n": len(y),
            "n_moved": n_moved,
            "accuracy": float(np.mean(pred == y)) if len(y) else float("nan"),
            "accuracy_moved": float(np.mean(direction[moved] == y[moved]))
            if n_moved
            else float("nan"),
            "accuracy_moved_3class": float(np.mean(pred[moved] == y[moved]))
            if n_moved
            else float("nan"),
            "f1_macro": f1_macro(pred, y),
            "ece": expected_calibration_error(p, y),
            "nll": float(-np.mean(np.log(np.maximum(p[np.arange(len(y)), y], 1e-12)))),
            "flat_share": float(1.0 - n_moved / len(y)) if len(y) else float("nan"),
        }
    return out
