"""Model inference latency in the hot path's setting: the market transformer (64 features,
sequence 32) as optimised TorchScript on one thread, through ``ModelSignal.predict``."""

from __future__ import annotations

import gc
import time

import torch

from flashmm.ml.models import build, optimize, script
from flashmm.ml.schema import FeatureSchema
from hotpath.inference import Model, ModelSignal


def bench_inference(runs: int = 3000) -> dict[str, float]:
    torch.manual_seed(0)
    module = optimize(script(build("transformer").eval()))
    sig = ModelSignal(Model(module, FeatureSchema(), "bench", (0.1, 0.2, 0.5), 32), budget_us=1e9)
    feats = [0.1] * 64
    for _ in range(200):  # fill the window and warm up
        sig.predict(feats, 0, 100.0)
    gc.collect()
    model_ns: list[int] = []
    predict_ns: list[int] = []
    for i in range(runs):
        feats[0] = (i % 7) * 0.01
        t0 = time.perf_counter_ns()
        sig.predict(feats, 0, 100.0)
        predict_ns.append(time.perf_counter_ns() - t0)
        model_ns.append(sig.last_latency_ns)
    model_ns.sort()
    predict_ns.sort()

    def pct(xs: list[int], q: float) -> float:
        return xs[min(len(xs) - 1, round(q / 100 * (len(xs) - 1)))] / 1000

    return {
        "ml.inference_p50_us": pct(model_ns, 50),
        "ml.inference_p99_us": pct(model_ns, 99),
        "ml.predict_p50_us": pct(predict_ns, 50),
        "ml.predict_p99_us": pct(predict_ns, 99),
        "ml.fallback_cycles": float(sig.fallback_cycles),
    }
