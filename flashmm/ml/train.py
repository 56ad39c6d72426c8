"""Training of the direction models on labelled ``Dataset``s.

Normalisation (z-score, clipped) is fitted on the training set only and travels in the
returned ``FeatureSchema``. Input sequences are gathered by index from the (N, 64) matrix
for each batch, so the windowed (N, T, 64) tensor never exists. The loss is cross-entropy
summed over horizons (optionally class-weighted); AdamW with a short warm-up and cosine
decay; early stopping on the validation NLL restores the best epoch's weights (the logistic
baseline, a convex problem, is instead fitted to its optimum by full-batch L-BFGS); a
per-horizon temperature is then fitted on the validation logits. Same seed, same device and
thread count: same weights.

With ``residual`` (MLP with a ``wide`` path only), the wide path is fitted first by L-BFGS
(the imbalance logistic regression, as the baseline is) and frozen, and the deep path's output
layer is zeroed: the model starts as that regression and learns a correction, and early
stopping can keep the regression itself (epoch 0).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from flashmm.ml.calibration import fit_temperature, horizon_metrics
from flashmm.ml.dataset import Dataset, horizon_name
from flashmm.ml.models import Temperature, build
from flashmm.ml.progress import Progress
from flashmm.ml.schema import FeatureSchema

_STD_FLOOR = 1e-8
_EVAL_BATCH = 4096
_MAX_THREADS = 8
SESSION_GAP_NS = 5_000_000_000  # samples further apart than this are not one history


@dataclass
class TrainResult:
    """The trained model (best epoch, eval mode, on CPU, uncalibrated) and what goes with it."""

    kind: str
    model: nn.Module
    schema: FeatureSchema
    seq_len: int
    horizons_s: tuple[float, ...]
    temperatures: list[float]
    metrics: dict[str, dict[str, float]]  # per horizon, on validation, calibrated
    history: list[dict[str, float]]
    best_epoch: int
    config: dict[str, Any]
    check_x: Tensor = field(repr=False)  # normalised validation windows, for export checks

    @property
    def horizons(self) -> list[str]:
        return [horizon_name(h) for h in self.horizons_s]

    def calibrated(self) -> nn.Module:
        """The model returning temperature-scaled logits (what is exported)."""
        return Temperature(self.model, torch.tensor(self.temperatures)).eval()


def fit_schema(x: np.ndarray, clip: float = 10.0) -> FeatureSchema:
    """Per-feature mean/std of ``x`` (a constant feature gets std 1)."""
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=0)
    std = x64.std(axis=0)
    std = np.where(std > _STD_FLOOR, std, 1.0)
    return FeatureSchema(
        mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std), clip=clip
    )


def normalize(x: np.ndarray, schema: FeatureSchema) -> np.ndarray:
    """z-score with the schema's mean/std, clipped to ±clip, as float32."""
    mean = np.asarray(schema.mean, dtype=np.float64)
    std = np.asarray(schema.std, dtype=np.float64)
    z = np.clip((x.astype(np.float64) - mean) / std, -schema.clip, schema.clip)
    return np.ascontiguousarray(z, dtype=np.float32)


def window_index(ts: np.ndarray, seq_len: int) -> np.ndarray:
    """Rows with ``seq_len`` rows of history in the same session (a session starts wherever
    the timestamp does not increase, e.g. where ``Dataset.concat`` joined two runs, or jumps
    by more than ``SESSION_GAP_NS``, e.g. across a chronological split's gap or between two
    recordings)."""
    n = len(ts)
    start = np.zeros(n, dtype=np.int64)
    if n:
        step = np.diff(ts)
        new = np.r_[True, (step <= 0) | (step > SESSION_GAP_NS)]
        start = np.maximum.accumulate(np.where(new, np.arange(n), 0))
    return np.nonzero(np.arange(n) - start >= seq_len - 1)[0]


def gather(xn: Tensor, idx: Tensor, seq_len: int) -> Tensor:
    """(B, seq_len, F) windows ending at rows ``idx`` of ``xn`` (N, F)."""
    offs = torch.arange(1 - seq_len, 1, device=xn.device)
    return xn[idx.unsqueeze(1) + offs]


@torch.no_grad()
def predict_logits(
    model: nn.Module, xn: Tensor, idx: Tensor, seq_len: int, batch: int = _EVAL_BATCH
) -> Tensor:
    """Logits (len(idx), H, 3) of ``model`` in eval mode, on ``xn``'s device."""
    was_training = model.training
    model.eval()
    out = [model(gather(xn, idx[i : i + batch], seq_len)) for i in range(0, len(idx), batch)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def class_weights(y: np.ndarray) -> Tensor:
    """(H, 3) inverse-frequency weights N / (3 · count): all 1 when the classes are balanced;
    capped at 5, and 0 for a class absent from the training labels."""
    w = np.ones((y.shape[1], 3))
    for h in range(y.shape[1]):
        counts = np.bincount(y[:, h], minlength=3).astype(np.float64)
        inv = np.where(counts > 0, counts.sum() / np.maximum(counts, 1.0) / 3.0, 0.0)
        w[h] = np.minimum(inv, 5.0)
    return torch.tensor(w, dtype=torch.float32)


def _loss(logits: Tensor, y: Tensor, weights: Tensor | None) -> Tensor:
    return sum(
        (
            nn.functional.cross_entropy(
                logits[:, h], y[:, h], weight=None if weights is None else weights[h]
            )
            for h in range(logits.shape[1])
        ),
        start=torch.zeros((), device=logits.device),
    )


def _fit_lbfgs(
    model: nn.Module, x_last: Tensor, y: Tensor, weights: Tensor | None, l2: float = 1e-4
) -> float:
    """Full-batch L-BFGS on rows (N, 64) for a model that reads only the newest row."""
    x = x_last.unsqueeze(1)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        penalty = sum((p.pow(2).sum() for n, p in model.named_parameters() if "weight" in n),
                      start=torch.zeros((), device=x.device))  # fmt: skip
        loss = _loss(model(x), y, weights) + l2 * penalty
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    model.train()
    opt.step(closure)  # type: ignore[no-untyped-call]
    model.eval()
    with torch.no_grad():
        return float(_loss(model(x), y, weights))


def _fit_wide_first(model: nn.Module, x_last: Tensor, y: Tensor, weights: Tensor | None) -> None:
    """An MLP's wide path fitted alone by L-BFGS (deep output zeroed), then frozen."""
    last = model.net[-1]  # type: ignore[index]
    assert isinstance(last, nn.Linear)
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    trainable = {n: p.requires_grad for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        p.requires_grad_(n.startswith("wide."))
    _fit_lbfgs(model, x_last, y, weights)
    for n, p in model.named_parameters():
        p.grad = None
        p.requires_grad_(trainable[n] and not n.startswith("wide."))


def _schedule(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    frac = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * frac))


def train(
    train: Dataset,
    val: Dataset,
    kind: str = "transformer",
    seed: int = 0,
    epochs: int = 20,
    batch_size: int = 256,
    lr: float = 1e-3,
    patience: int = 4,
    seq_len: int = 32,
    device: str | None = None,
    *,
    weight_decay: float = 1e-2,
    weighted: bool = False,
    model_kwargs: dict[str, Any] | None = None,
    threads: int | None = None,
    quiet: bool = False,
    residual: bool = False,
) -> TrainResult:
    """Train a ``kind`` model on ``train``, early-stopped and calibrated on ``val``
    (``residual``: see the module docstring; MLP only)."""
    if train.horizons_s != val.horizons_s:
        raise ValueError("train and validation sets have different horizons")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    old_threads = torch.get_num_threads()
    if dev.type == "cpu":
        # beyond ~8 threads these small matrices gain little and contend with the rest
        torch.set_num_threads(threads or min(old_threads, _MAX_THREADS))
    try:
        return _train(
            train, val, kind, seed, epochs, batch_size, lr, patience, seq_len, dev,
            weight_decay, weighted, dict(model_kwargs or {}), quiet, residual,
        )  # fmt: skip
    finally:
        torch.set_num_threads(old_threads)


def _train(
    train: Dataset,
    val: Dataset,
    kind: str,
    seed: int,
    epochs: int,
    batch_size: int,
    lr: float,
    patience: int,
    seq_len: int,
    dev: torch.device,
    weight_decay: float,
    weighted: bool,
    model_kwargs: dict[str, Any],
    quiet: bool,
    residual: bool = False,
) -> TrainResult:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    schema = fit_schema(train.x)
    xt = torch.from_numpy(normalize(train.x, schema)).to(dev)
    yt = torch.from_numpy(train.y.astype(np.int64)).to(dev)
    xv = torch.from_numpy(normalize(val.x, schema)).to(dev)
    yv = torch.from_numpy(val.y.astype(np.int64)).to(dev)
    tr_idx = window_index(train.ts, seq_len)
    va_idx = torch.from_numpy(window_index(val.ts, seq_len)).to(dev)
    if len(tr_idx) == 0 or len(va_idx) == 0:
        raise ValueError(f"not enough rows for seq_len={seq_len} in train or validation set")
    n_h = train.y.shape[1]
    model = build(kind, n_horizons=n_h, seq_len=seq_len, **model_kwargs).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(tr_idx) / batch_size)
    total = steps_per_epoch * epochs
    warmup = max(1, min(200, total // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _schedule(s, warmup, total))
    weights = class_weights(train.y).to(dev) if weighted else None

    best_loss, best_epoch, best_state = math.inf, -1, copy.deepcopy(model.state_dict())
    history: list[dict[str, float]] = []
    if kind == "logistic":  # convex: fit to the optimum, full batch, instead of SGD epochs
        tr_loss = _fit_lbfgs(model, xt[torch.from_numpy(tr_idx).to(dev)], yt[tr_idx], weights)
        val_loss = float(_loss(predict_logits(model, xv, va_idx, seq_len), yv[va_idx], None))
        history.append({"epoch": 1, "train_loss": tr_loss, "val_loss": val_loss})
        best_epoch, best_state, epochs = 1, copy.deepcopy(model.state_dict()), 0
    if kind == "mlp" and residual and getattr(model, "use_wide", False):
        _fit_wide_first(model, xt[torch.from_numpy(tr_idx).to(dev)], yt[tr_idx], weights)
        best_loss = float(_loss(predict_logits(model, xv, va_idx, seq_len), yv[va_idx], None))
        best_epoch, best_state = 0, copy.deepcopy(model.state_dict())  # epoch 0: the regression
    for epoch in range(epochs):
        model.train()
        perm = torch.from_numpy(rng.permutation(tr_idx)).to(dev)
        bar = Progress(steps_per_epoch, f"{kind} epoch {epoch + 1}/{epochs}", quiet)
        run_loss, seen = 0.0, 0
        for i in range(0, len(perm), batch_size):
            b = perm[i : i + batch_size]
            loss = _loss(model(gather(xt, b, seq_len)), yt[b], weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            run_loss += loss.item() * len(b)
            seen += len(b)
            bar.update(1, loss=run_loss / seen)
        val_logits = predict_logits(model, xv, va_idx, seq_len)
        val_loss = float(_loss(val_logits, yv[va_idx], None))
        history.append({"epoch": epoch + 1, "train_loss": run_loss / seen, "val_loss": val_loss})
        bar.close(loss=run_loss / seen, val_loss=val_loss)
        if val_loss < best_loss - 1e-6:
            best_loss, best_epoch = val_loss, epoch + 1
            best_state = copy.deepcopy(model.state_dict())
        elif epoch + 1 - best_epoch >= patience:
            break
    model.load_state_dict(best_state)
    model.eval()

    val_logits = predict_logits(model, xv, va_idx, seq_len).cpu()
    val_y = yv[va_idx].cpu()
    temps = fit_temperature(val_logits, val_y)
    horizons = [horizon_name(h) for h in train.horizons_s]
    calibrated = (val_logits / temps.view(1, -1, 1)).numpy()
    metrics = horizon_metrics(calibrated, val_y.numpy(), horizons)
    raw = horizon_metrics(val_logits.numpy(), val_y.numpy(), horizons)
    for h in horizons:
        metrics[h]["ece_uncalibrated"] = raw[h]["ece"]
    check_idx = va_idx[torch.linspace(0, len(va_idx) - 1, min(64, len(va_idx))).long()]
    config = {
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "patience": patience,
        "weight_decay": weight_decay,
        "weighted": weighted,
        "model_kwargs": model_kwargs,
        "residual": residual,
        "device": dev.type,
        "train_windows": len(tr_idx),
        "val_windows": len(va_idx),
    }
    return TrainResult(
        kind=kind,
        model=model.cpu(),
        schema=schema,
        seq_len=seq_len,
        horizons_s=tuple(train.horizons_s),
        temperatures=[float(t) for t in temps],
        metrics=metrics,
        history=history,
        best_epoch=best_epoch,
        config=config,
        check_x=gather(xv, check_idx, seq_len).cpu(),
    )
