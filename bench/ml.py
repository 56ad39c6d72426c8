"""Model inference in the hot path's setting: the bundled model (``cli.demo.BUNDLED_MODEL``,
the default signal) as optimised TorchScript on one thread, through ``ModelSignal.predict``
back to back; and the model off the cycle in the demo's two-market set-up at the live
cadence."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from hotpath.inference import ModelSignal


def bench_inference(runs: int = 3000) -> dict[str, float]:
    from cli.demo import BUNDLED_MODEL
    from hotpath.inference import load_model

    torch.manual_seed(0)
    sig = ModelSignal(load_model(str(BUNDLED_MODEL)), budget_us=1e9)
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


def bench_model_two_markets(
    seconds: float = 60.0, background: bool = True, rounds: int = 2
) -> dict[str, float]:
    """The demo's set-up on this machine: a localnet process and one hot-path process per
    market of ``config.example.yaml`` (SEI/USDC, ATOM/USDC), all at once, stores on, for
    ``seconds``: without a model and with the bundled transformer off the cycle (the default
    ``ml`` settings), ``rounds`` times each in ABBA order so load from elsewhere falls on
    both alike. Figures from each hot path's last status line: the share of cycles after
    warm-up quoted on a fresh model signal (pooled), the signal's age (worst p50 and p99),
    and the quote-cycle p99 (cycle start → batch handed to the venue; the mean and the
    worst over the hot paths and rounds; the model's warm-up cycles, which run no model,
    are included). ``background=False`` runs the model inline in the cycle (as before)."""
    from cli.demo import BUNDLED_MODEL
    from flashmm import devservices

    devservices.ensure()
    bare: list[dict[str, Any]] = []
    model: list[dict[str, Any]] = []
    for i in range(rounds):
        for with_model in (False, True) if i % 2 == 0 else (True, False):
            if with_model:
                model += asyncio.run(_two_markets(seconds, str(BUNDLED_MODEL), background))
            else:
                bare += asyncio.run(_two_markets(seconds, None))
    figs = [st["model"] or {} for st in model]
    counted = sum(f.get("cycles", 0) - f.get("warmup_cycles", 0) for f in figs)
    p99_bare = [float(st["to_venue_p99_us"]) for st in bare]
    p99_model = [float(st["to_venue_p99_us"]) for st in model]
    return {
        "ml.live_signal_share": sum(f.get("live_cycles", 0) for f in figs) / max(1, counted),
        "ml.signal_age_p50_ms": max(f.get("age_p50_ms", 0.0) for f in figs),
        "ml.signal_age_p99_ms": max(f.get("age_p99_ms", 0.0) for f in figs),
        "ml.two_market_cycle_p99_us_without_model": sum(p99_bare) / len(p99_bare),
        "ml.two_market_cycle_p99_us_with_model": sum(p99_model) / len(p99_model),
        "ml.two_market_cycle_p99_us_without_model_max": max(p99_bare),
        "ml.two_market_cycle_p99_us_with_model_max": max(p99_model),
        "ml.two_market_cycles_counted": float(counted),
    }


async def _two_markets(
    seconds: float, model_path: str | None, background: bool = True
) -> list[dict[str, Any]]:
    """Run the two hot paths against a fresh localnet; each one's last status line."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "FLASHMM_CONFIG": str(root / "config.example.yaml")}
    env.setdefault("FLASHMM_LOG_LEVEL", "WARNING")
    node = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "localnet",
        "--rest-port",
        "0",
        "--rpc-port",
        "0",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert node.stdout is not None
        ready = json.loads(await asyncio.wait_for(node.stdout.readline(), 30))
        env["FLASHMM_VENUE__REST_URLS"] = json.dumps([ready["rest"]])
        env["FLASHMM_VENUE__WS_URLS"] = json.dumps([ready["rpc"]])
        if model_path is None:
            env["FLASHMM_ML__ENABLED"] = "false"
        else:
            env["FLASHMM_ML__MODEL_PATH"] = model_path
            env["FLASHMM_ML__BACKGROUND"] = "true" if background else "false"
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "cli",
                "hotpath",
                "--market",
                symbol,
                "--duration",
                str(seconds),
                "--json",
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
            for symbol in ("SEI/USDC", "ATOM/USDC")
        ]
        outs = await asyncio.wait_for(
            asyncio.gather(*(p.communicate() for p in procs)), seconds + 120
        )
    finally:
        node.terminate()
        await node.wait()
    last: list[dict[str, Any]] = []
    for out, _ in outs:
        lines = [json.loads(x) for x in out.decode().splitlines() if x.startswith("{")]
        status = [x for x in lines if "to_venue_p99_us" in x]
        if not status:
            raise RuntimeError("a hot path printed no status line")
        last.append(status[-1])
    return last
