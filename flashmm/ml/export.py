"""Model artifacts: a directory with ``model.ts`` (TorchScript, temperature applied) and
``card.json`` (what it is, what it was trained on, how good and how fast it is).

The saved TorchScript is plain ``torch.jit.script`` output: not frozen and without
``optimize_for_inference`` rewrites, because a frozen module bakes its weights in as CPU
constants (it can no longer be moved to another device, and its state dict is empty). The
loader applies ``optimize_for_inference`` in the process that runs it; the card's latency is
measured that way. Export refuses to write a card unless the reloaded file reproduces the
trained module's outputs on held-out windows within ``tolerance``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from flashmm import __version__
from flashmm.ml.models import load_script, optimize, save_script, script
from flashmm.ml.schema import FeatureSchema, SchemaMismatchError, check_compatible
from flashmm.ml.train import TrainResult

MODEL_FILE = "model.ts"
CARD_FILE = "card.json"
CARD_FORMAT = 1
CLASSES = ("down", "flat", "up")


class ArtifactError(RuntimeError):
    """An artifact failed its export check or is damaged or incomplete."""


@dataclass
class LoadedModel:
    """A loaded artifact: ``module(x)`` maps normalised (B, seq_len, 64) windows to
    calibrated logits (B, H, 3)."""

    module: torch.jit.ScriptModule
    schema: FeatureSchema
    card: dict[str, Any]
    path: Path

    @property
    def seq_len(self) -> int:
        return int(self.card["seq_len"])

    @property
    def horizons(self) -> list[str]:
        return [str(h) for h in self.card["horizons"]]

    def __call__(self, x: Tensor) -> Tensor:
        with torch.inference_mode():
            return self.module(x)  # type: ignore[no-any-return]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def max_abs_diff(a: torch.nn.Module, b: torch.nn.Module, x: Tensor) -> float:
    with torch.inference_mode():
        return float((a(x) - b(x)).abs().max())


def measure_latency(
    module: torch.nn.Module, shape: tuple[int, ...], runs: int = 1000, warmup: int = 100
) -> dict[str, Any]:
    """p50/p99 of one forward pass in µs, on one thread (restored afterwards)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    x = torch.randn(*shape)
    times = np.empty(runs)
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                module(x)
            for i in range(runs):
                t0 = time.perf_counter_ns()
                module(x)
                times[i] = time.perf_counter_ns() - t0
    finally:
        torch.set_num_threads(old)
    return {
        "p50_us": float(np.percentile(times, 50) / 1e3),
        "p99_us": float(np.percentile(times, 99) / 1e3),
        "runs": runs,
        "threads": 1,
        "input_shape": list(shape),
    }


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n")
    os.replace(tmp, path)


def export(
    result: TrainResult,
    out_dir: str | Path,
    data_range: dict[str, Any],
    *,
    tolerance: float = 1e-5,
    latency_runs: int = 1000,
) -> Path:
    """Write the artifact for ``result`` to ``out_dir`` and return the directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_path, card_path = out / MODEL_FILE, out / CARD_FILE
    card_path.unlink(missing_ok=True)  # no card = no (half-written) artifact
    trained = result.calibrated()
    save_script(script(trained), str(model_path))

    reloaded = load_script(str(model_path))
    x = result.check_x
    diff = max_abs_diff(trained, reloaded, x)
    if not diff <= tolerance:
        model_path.unlink(missing_ok=True)
        raise ArtifactError(
            f"exported TorchScript differs from the trained model by {diff:.3g} "
            f"(tolerance {tolerance:g}) on {len(x)} held-out windows"
        )
    optimized = optimize(reloaded)
    diff_opt = max_abs_diff(trained, optimized, x)
    n_features = len(result.schema.names)
    latency = measure_latency(optimized, (1, result.seq_len, n_features), runs=latency_runs)
    latency["optimized"] = True

    created = dt.datetime.now(dt.UTC).replace(microsecond=0)
    sha = _sha256(model_path)
    card: dict[str, Any] = {
        "format": CARD_FORMAT,
        "kind": result.kind,
        "version": f"{result.kind}-{created:%Y%m%dT%H%M%SZ}-{sha[:8]}",
        "created": created.isoformat(),
        "flashmm_version": __version__,
        "torch_version": torch.__version__,
        "model_file": MODEL_FILE,
        "model_sha256": sha,
        "data_range": data_range,
        "feature_schema": result.schema.to_json(),
        "seq_len": result.seq_len,
        "horizons": result.horizons,
        "horizons_s": list(result.horizons_s),
        "input": {
            "shape": ["batch", result.seq_len, n_features],
            "normalisation": "z-score with feature_schema mean/std, clipped to ±clip; "
            "oldest row first, newest last",
        },
        "output": {"shape": ["batch", len(result.horizons), 3], "classes": list(CLASSES)},
        "calibration": {"method": "temperature", "temperatures": result.temperatures},
        "train_config": result.config,
        "best_epoch": result.best_epoch,
        "history": result.history,
        "metrics": result.metrics,
        "metrics_on": "validation split (also used for early stopping and temperature fitting)",
        "latency": latency,
        "parity": {
            "max_abs_diff": diff,
            "max_abs_diff_optimized": diff_opt,
            "tolerance": tolerance,
            "windows": len(x),
        },
    }
    _write_json(card_path, card)
    return out


def read_schema(card: dict[str, Any]) -> FeatureSchema:
    """The card's feature schema; ``SchemaMismatchError`` if its hash does not match its
    own names (edited or reordered) or this code's feature layout."""
    d = card["feature_schema"]
    schema = FeatureSchema(
        tuple(str(n) for n in d["names"]),
        int(d["version"]),
        tuple(float(v) for v in d["mean"]),
        tuple(float(v) for v in d["std"]),
        float(d["clip"]),
    )
    if d.get("hash") != schema.layout_hash:
        raise SchemaMismatchError(
            f"card schema hash {d.get('hash')} does not match its feature list "
            f"({schema.layout_hash}): the feature names or their order were changed"
        )
    check_compatible(schema)
    return schema


def load(path: str | Path, *, device: str = "cpu", optimized: bool = True) -> LoadedModel:
    """Load an artifact directory, refusing a schema this code does not compute."""
    root = Path(path)
    card_path, model_path = root / CARD_FILE, root / MODEL_FILE
    if not card_path.is_file() or not model_path.is_file():
        raise ArtifactError(f"{root} is not a model artifact (needs {CARD_FILE} and {MODEL_FILE})")
    card: dict[str, Any] = json.loads(card_path.read_text())
    if card.get("format") != CARD_FORMAT:
        raise ArtifactError(f"unsupported card format {card.get('format')!r}")
    schema = read_schema(card)
    if _sha256(model_path) != card.get("model_sha256"):
        raise ArtifactError(f"{model_path} does not match the card's checksum")
    module = load_script(str(model_path), device)
    if optimized and torch.device(device).type == "cpu":
        module = optimize(module)
    return LoadedModel(module, schema, card, root)
