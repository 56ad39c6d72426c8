"""Live inference: window buffer, circuit breaker, fallback, hot swap, shadow, accuracy,
and offline/online feature parity through the session recorder."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from flashmm.domain.instrument import SEI_USDC
from flashmm.ml.recording import SessionWriter, replay
from flashmm.ml.schema import FeatureSchema, SchemaMismatchError, check_compatible
from flashmm.sim.inprocess import InProcessVenue
from flashmm.sim.params import MarketParams
from hotpath.engine import MarketMaker
from hotpath.inference import FallbackSignal, Model, ModelSignal
from hotpath.loop import LoopConfig, QuoteLoop
from hotpath.quoting.params import QuoteParams
from hotpath.risk import RiskLimits

SEQ = 4


class LastRowUp(torch.nn.Module):
    """Logits favouring UP by the first feature of the newest row, for every horizon."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x[:, -1, 0]
        z = torch.stack([-v, torch.zeros_like(v), v], dim=-1)
        return z.unsqueeze(1).repeat(1, 3, 1)


class Recorder:
    """A fake module that records its inputs (to check the window) and can fail or stall."""

    def __init__(self, delay_s: float = 0.0, fail: bool = False) -> None:
        self.inputs: list[np.ndarray] = []
        self.delay_s = delay_s
        self.fail = fail

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.numpy().copy())
        if self.fail:
            raise RuntimeError("boom")
        if self.delay_s:
            time.sleep(self.delay_s)
        return torch.zeros(1, 3, 3)


def model(module: object, version: str = "v1") -> Model:
    return Model(module, FeatureSchema(), version, (0.1, 0.2, 0.5), SEQ)


def feats(first: float) -> list[float]:
    f = [0.0] * 64
    f[0] = first
    return f


def test_window_is_the_last_seq_rows_oldest_first() -> None:
    rec = Recorder()
    sig = ModelSignal(model(rec), budget_us=1e6)
    for i in range(SEQ + 3):
        sig.predict(feats(float(i)), i, 100.0)
    # the first inference happens once SEQ rows exist; each sees the newest SEQ rows in order
    assert len(rec.inputs) == 4
    for k, x in enumerate(rec.inputs):
        assert x.shape == (1, SEQ, 64)
        assert x[0, :, 0].tolist() == [float(k + j) for j in range(SEQ)]


def test_normalisation_and_clipping_use_the_model_schema() -> None:
    rec = Recorder()
    schema = FeatureSchema(mean=(1.0,) * 64, std=(2.0,) * 64, clip=3.0)
    sig = ModelSignal(Model(rec, schema, "v", (0.1, 0.2, 0.5), SEQ))
    for v in (5.0, 101.0, -99.0, 1.0):
        sig.predict(feats(v), 0, 100.0)
    assert rec.inputs[0][0, :, 0].tolist() == [2.0, 3.0, -3.0, 0.0]


def test_signal_direction_and_confidence_from_the_chosen_horizon() -> None:
    sig = ModelSignal(model(torch.jit.script(LastRowUp())), horizon_s=0.2)
    out = (0.0, 0.0)
    for _ in range(SEQ):
        out = sig.predict(feats(2.0), 0, 100.0)
    p = torch.softmax(torch.tensor([-2.0, 0.0, 2.0]), 0).tolist()
    assert out[0] == pytest.approx(p[2] - p[0], rel=1e-5)
    assert out[1] == pytest.approx(p[2], rel=1e-5)


def test_no_model_or_warm_up_uses_the_fallback() -> None:
    sig = ModelSignal(None)
    f = feats(0.0)
    f[12] = 0.5  # imb_1
    assert sig.predict(f, 0, 100.0) == FallbackSignal().predict(f, 0, 100.0)
    assert sig.fallback_cycles == 1
    warming = ModelSignal(model(Recorder()))
    warming.predict(f, 0, 100.0)  # fewer than SEQ rows yet
    assert warming.fallback_cycles == 1


def test_slow_model_trips_the_breaker_and_recovers_after_cooldown() -> None:
    slow = Recorder(delay_s=0.05)
    sig = ModelSignal(model(slow), budget_us=20_000, slow_trip=3, cooldown_s=1.0)
    ns = 0
    for _ in range(SEQ - 1):
        sig.predict(feats(0.0), ns, 100.0)
    calls = len(slow.inputs)
    for _ in range(3):  # three over-budget inferences in a row
        sig.predict(feats(0.0), ns, 100.0)
    assert sig.trips == 1 and sig.open_reason.startswith("slow")
    calls = len(slow.inputs)
    for _ in range(5):  # open: the model is not called, the fallback quotes
        sig.predict(feats(0.0), ns, 100.0)
    assert len(slow.inputs) == calls
    assert sig.status()["breaker_open"] is True
    slow.delay_s = 0.0
    ns += 2_000_000_000  # after the cooldown: one trial, which is fast, closes it
    sig.predict(feats(0.0), ns, 100.0)
    assert sig.status()["breaker_open"] is False  # reported closed again after the cool-down
    assert len(slow.inputs) == calls + 1
    assert sig.slow_in_row == 0
    sig.predict(feats(0.0), ns, 100.0)
    assert len(slow.inputs) == calls + 2


def test_failing_model_is_bypassed_never_raises() -> None:
    bad = Recorder(fail=True)
    sig = ModelSignal(model(bad), cooldown_s=5.0)
    for _ in range(SEQ + 5):
        direction, conf = sig.predict(feats(0.0), 0, 100.0)
        assert -1.0 <= direction <= 1.0 and 0.0 <= conf <= 1.0
    assert sig.errors == 1 and sig.trips == 1
    assert len(bad.inputs) == 1  # tripped on the first error


def test_hot_swap_between_cycles_and_rollback_keep_the_window() -> None:
    first, second = Recorder(), Recorder()
    sig = ModelSignal(model(first, "v1"), budget_us=1e6)
    for i in range(SEQ):
        sig.predict(feats(float(i)), 0, 100.0)
    sig.promote(model(second, "v2"))
    sig.predict(feats(9.0), 0, 100.0)
    # the new model's first cycle already has a full window: no missed cycle
    assert len(second.inputs) == 1
    assert second.inputs[0][0, :, 0].tolist() == [1.0, 2.0, 3.0, 9.0]
    assert sig.status()["model"] == "v2" and sig.status()["previous"] == "v1"
    assert sig.rollback()
    sig.predict(feats(10.0), 0, 100.0)
    assert sig.status()["model"] == "v1" and len(first.inputs) == 2


def test_shadow_runs_after_the_cycle_and_logs_both() -> None:
    sig = ModelSignal(model(torch.jit.script(LastRowUp()), "live"))
    sig.shadow = model(Recorder(), "candidate")  # zeros: every class equal -> DOWN (0)
    for _ in range(SEQ):
        sig.predict(feats(3.0), 1, 100.0)
    sig.after_cycle(1)
    assert len(sig.shadow_log) == 1
    _, live, shadow = sig.shadow_log[0]
    assert live == (2, 2, 2) and shadow == (0, 0, 0)


def test_live_accuracy_scores_each_horizon_with_the_mid_that_held() -> None:
    sig = ModelSignal(model(torch.jit.script(LastRowUp())))
    t = 1_000_000_000
    sig.observe(t, 100.0)
    for _ in range(SEQ):
        sig.predict(feats(1.0), t, 100.0)  # predicts UP at every horizon
    sig.observe(t + 150_000_000, 101.0)  # the 100 ms horizon ended with the mid at 100: flat
    sig.observe(t + 600_000_000, 99.0)  # 200 and 500 ms ended with the mid at 101: up
    acc = sig.status()["accuracy"]
    assert acc["200ms"] == 1.0 and acc["500ms"] == 1.0
    assert acc["100ms"] != acc["100ms"]  # NaN: a flat outcome is not scored
    assert {o[1] for o in sig.outcomes} == {"100ms", "200ms", "500ms"}


def test_a_model_with_another_feature_layout_is_refused() -> None:
    names = list(FeatureSchema().names)
    names[0], names[1] = names[1], names[0]
    with pytest.raises(SchemaMismatchError):
        check_compatible(FeatureSchema(names=tuple(names)))


def test_recorded_session_replays_to_bit_identical_features(tmp_path: Path) -> None:
    class Tap(FallbackSignal):
        def __init__(self) -> None:
            self.seen: list[tuple[int, list[float]]] = []

        def predict(self, features: list[float], ts_ns: int, mid: float) -> tuple[float, float]:
            self.seen.append((ts_ns, list(features)))
            return super().predict(features, ts_ns, mid)

    async def run() -> Tap:
        tap = Tap()
        mm = MarketMaker(SEI_USDC, QuoteParams(), RiskLimits(), signal=tap)
        venue = InProcessVenue(SEI_USDC, MarketParams(seed=3, warmup_s=5))
        loop = QuoteLoop(
            mm,
            venue,
            LoopConfig(quote_hz=20, shutdown_timeout_s=1.0),
            recorder=SessionWriter(tmp_path, "SEI_USDC", max_bytes=4096),
        )
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(2.5, stop.set)
        await asyncio.wait_for(loop.run(stop), 20)
        await venue.close()
        return tap

    tap = asyncio.run(run())
    files = sorted(tmp_path.glob("*.jsonl.gz"), key=lambda p: p.stat().st_mtime)
    replayed = list(replay(files))
    assert len(tap.seen) > 20
    assert replayed == tap.seen  # same timestamps, same floats, same order
