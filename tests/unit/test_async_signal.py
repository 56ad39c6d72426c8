"""The model signal off the quote cycle: the cycle never waits for the model, takes the
latest result only while it is fresh, records its age; breaker, fallback and hot swap still
work; inline signals (backtests, replays) keep sampling and predicting in the cycle."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from flashmm.book.l2 import L2Book
from flashmm.domain.instrument import SEI_USDC
from flashmm.ml.schema import FeatureSchema
from flashmm.sim.inprocess import InProcessVenue
from flashmm.sim.params import MarketParams
from flashmm.venue.base import OrderBatch
from hotpath.background_signal import BackgroundModelSignal
from hotpath.engine import MarketMaker
from hotpath.inference import FallbackSignal, Model, ModelSignal
from hotpath.loop import LoopConfig, QuoteLoop
from hotpath.metrics import HotPathCollector
from hotpath.quoting.params import QuoteParams
from hotpath.risk import RiskLimits

SEQ = 4
MS = 1_000_000
WAIT_S = 10.0  # bounded waits for the worker thread (never reached when things work)


class LastRowUp(torch.nn.Module):
    """Logits favouring UP by the first feature of the newest row, for every horizon."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x[:, -1, 0]
        z = torch.stack([-v, torch.zeros_like(v), v], dim=-1)
        return z.unsqueeze(1).repeat(1, 3, 1)


class Gate:
    """A stand-in module that blocks inside inference until released (a slow model whose
    slowness the test controls), or fails."""

    def __init__(self, fail: bool = False, blocking: bool = True) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls: list[np.ndarray] = []
        self.fail = fail
        if not blocking:
            self.release.set()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.numpy().copy())
        self.entered.set()
        assert self.release.wait(WAIT_S), "the test never released the model"
        if self.fail:
            raise RuntimeError("boom")
        return torch.tensor([[[0.0, 0.0, 2.0]] * 3])  # UP at every horizon


def model(module: object, version: str = "v1") -> Model:
    return Model(module, FeatureSchema(), version, (0.1, 0.2, 0.5), SEQ)


def feats(first: float) -> list[float]:
    f = [0.0] * 64
    f[0] = first
    f[12] = 0.25  # imb_1, what the fallback reads
    return f


FALLBACK = FallbackSignal().predict(feats(0.0), 0, 100.0)


@pytest.fixture
def signals() -> Iterator[list[BackgroundModelSignal]]:
    made: list[BackgroundModelSignal] = []
    yield made
    for s in made:
        s.close()


def background(
    made: list[BackgroundModelSignal], module: object, **kw: float
) -> BackgroundModelSignal:
    kw.setdefault("max_age_ms", 100.0)
    kw.setdefault("lead_ms", 50.0)
    sig = BackgroundModelSignal(model(module), **kw)  # type: ignore[arg-type]
    made.append(sig)
    return sig


def fill_window(sig: BackgroundModelSignal, ts: int, first: float = 1.0) -> None:
    for _ in range(SEQ):
        sig.submit(feats(first), ts, 100.0)
    assert sig.wait_idle(WAIT_S)


def test_the_cycle_never_waits_for_a_slow_model(signals: list[BackgroundModelSignal]) -> None:
    gate = Gate()
    sig = background(signals, gate, lead_ms=60_000.0, max_age_ms=120_000.0)
    for _ in range(SEQ):
        sig.submit(feats(1.0), 0, 100.0)
    assert gate.entered.wait(WAIT_S)  # the worker is inside inference, blocked
    # while it is stuck, every cycle answers at once, on the fallback
    for k in range(5):
        assert sig.predict(feats(1.0), (k + 1) * MS, 100.0) == FALLBACK
    assert sig.live_cycles == 0 and sig.fallback_cycles == 5
    assert not sig.wait_idle(0.0)  # still busy: nothing above waited for it
    gate.release.set()
    assert sig.wait_idle(WAIT_S)
    direction, confidence = sig.current(feats(1.0), 10 * MS, 100.0)
    p = torch.softmax(torch.tensor([0.0, 0.0, 2.0]), 0).tolist()
    assert direction == pytest.approx(p[2] - p[0]) and confidence == pytest.approx(p[2])
    assert sig.live_cycles == 1
    # the worker took the newest window (latest wins), not every one it was handed
    assert len(gate.calls) == 2
    assert gate.calls[-1].shape == (1, SEQ, 64)


def test_a_fresh_result_is_used_a_stale_one_is_not_and_the_age_is_recorded(
    signals: list[BackgroundModelSignal],
) -> None:
    sig = background(signals, torch.jit.script(LastRowUp()), max_age_ms=100.0)
    t0 = 5_000 * MS
    fill_window(sig, t0, first=2.0)
    inline = ModelSignal(model(torch.jit.script(LastRowUp())))
    for _ in range(SEQ):
        expected = inline.predict(feats(2.0), t0, 100.0)
    assert sig.current(feats(2.0), t0 + 40 * MS, 100.0) == pytest.approx(expected)
    assert sig.current(feats(2.0), t0 + 100 * MS, 100.0) == pytest.approx(expected)  # at limit
    assert sig.current(feats(2.0), t0 + 101 * MS, 100.0) == FallbackSignal().predict(
        feats(2.0), 0, 100.0
    )
    assert (sig.live_cycles, sig.stale_cycles, sig.fallback_cycles) == (2, 1, 0 + 1)
    assert sorted(sig.age.samples()) == [40 * MS, 100 * MS, 101 * MS]
    assert sig.live_share == pytest.approx(2 / 3)
    st = sig.status()
    assert st["signal_age_p99_ms"] == pytest.approx(101.0) and st["background"] is True


def test_warm_up_cycles_fall_back_and_are_not_counted_in_the_share(
    signals: list[BackgroundModelSignal],
) -> None:
    sig = background(signals, torch.jit.script(LastRowUp()))
    for k in range(SEQ - 1):
        assert sig.predict(feats(1.0), k * MS, 100.0) == FALLBACK
    assert sig.warmup_cycles == SEQ - 1 and sig.live_share is None
    assert sig.inferences == 0


def test_errors_trip_the_breaker_and_the_cycles_fall_back_never_raise(
    signals: list[BackgroundModelSignal],
) -> None:
    bad = Gate(fail=True, blocking=False)
    sig = background(signals, bad, cooldown_s=5.0)
    fill_window(sig, 0)
    assert sig.errors == 1 and sig.trips == 1 and sig.open_reason.startswith("error")
    assert sig.current(feats(0.0), MS, 100.0) == FALLBACK
    calls = len(bad.calls)
    sig.submit(feats(0.0), 2 * MS, 100.0)  # open: nothing is handed to the model
    assert sig.wait_idle(WAIT_S) and len(bad.calls) == calls
    bad.fail = False
    sig.submit(feats(0.0), 6_000 * MS, 100.0)  # after the cooldown: a trial, which works
    assert sig.wait_idle(WAIT_S) and len(bad.calls) == calls + 1
    assert sig.current(feats(0.0), 6_001 * MS, 100.0) != FALLBACK


def test_inferences_slower_than_the_lead_trip_the_breaker(
    signals: list[BackgroundModelSignal],
) -> None:
    class Slow:
        """Takes at least 5 ms (a 1 ms budget is always exceeded)."""

        def __call__(self, x: torch.Tensor) -> torch.Tensor:
            threading.Event().wait(0.005)
            return torch.zeros(1, 3, 3)

    sig = background(signals, Slow(), lead_ms=1.0, max_age_ms=10.0, slow_trip=3)
    for _ in range(SEQ - 1):
        sig.submit(feats(0.0), 0, 100.0)
    for _ in range(3):
        sig.submit(feats(0.0), 0, 100.0)
        assert sig.wait_idle(WAIT_S)
    assert sig.trips == 1 and sig.open_reason.startswith("slow")
    assert not sig.ready(1)


def test_a_hot_swap_drops_results_and_windows_of_the_previous_model(
    signals: list[BackgroundModelSignal],
) -> None:
    gate = Gate()
    sig = background(signals, gate, lead_ms=60_000.0, max_age_ms=120_000.0)
    for _ in range(SEQ):
        sig.submit(feats(1.0), 0, 100.0)
    assert gate.entered.wait(WAIT_S)
    sig.submit(feats(2.0), MS, 100.0)  # queued behind the blocked inference, old model
    new = Gate(blocking=False)
    swap = threading.Thread(target=sig.promote, args=(model(new, "v2"),))
    swap.start()  # waits for the inference in flight
    gate.release.set()
    swap.join(WAIT_S)
    assert not swap.is_alive()
    assert sig.wait_idle(WAIT_S)
    assert new.calls == []  # the queued window was normalised for v1: dropped
    assert sig.current(feats(0.0), 2 * MS, 100.0) == FALLBACK  # v1's result is gone
    sig.submit(feats(3.0), 3 * MS, 100.0)
    assert sig.wait_idle(WAIT_S) and len(new.calls) == 1
    assert sig.status()["model"] == "v2"


def test_the_shadow_runs_on_the_worker_beside_the_live_model(
    signals: list[BackgroundModelSignal],
) -> None:
    sig = background(signals, torch.jit.script(LastRowUp()))
    sig.shadow = model(Gate(blocking=False), "candidate")
    sig.after_cycle(0)  # nothing on the loop thread
    fill_window(sig, 0, first=3.0)
    assert len(sig.shadow_log) == 0  # the loop thread takes the entries at its next cycle
    sig.current(feats(0.0), MS, 100.0)
    assert len(sig.shadow_log) == 1
    _, live, shadow = sig.shadow_log[0]
    assert live == (2, 2, 2) and shadow == (2, 2, 2)


def book() -> L2Book:
    b = L2Book()
    for i in range(10):
        b.set_level(1, 5000 - i, 100 + 10 * i)
        b.set_level(-1, 5002 + i, 80 + 10 * i)
    return b


def test_a_prepared_cycle_quotes_on_the_background_result_without_sampling_again(
    signals: list[BackgroundModelSignal],
) -> None:
    sig = background(signals, torch.jit.script(LastRowUp()))
    mm = MarketMaker(SEI_USDC, QuoteParams(), RiskLimits(), book=book(), signal=sig)
    t = 1_000 * MS
    for k in range(SEQ):
        mm.risk.last_data_ns = t + k * 200 * MS
        assert mm.prepare_signal(t + k * 200 * MS)
        assert sig.wait_idle(WAIT_S)
        mm.cycle(t + k * 200 * MS + 20 * MS)
    assert mm.features.samples == SEQ  # one sample per cycle, taken ahead of it
    assert mm.last_sample is not None and mm.last_sample[0] == t + (SEQ - 1) * 200 * MS
    assert sig.live_cycles == 1 and mm.last_signal == sig.current(feats(0.0), t, 100.0)
    # a reactive cycle in between takes the latest result and does not sample
    mm.cycle(t + (SEQ - 1) * 200 * MS + 60 * MS, reactive=True)
    assert mm.features.samples == SEQ and sig.live_cycles == 3
    # a scheduled cycle nobody prepared samples for itself (and starts the model on it)
    mm.cycle(t + SEQ * 200 * MS)
    assert mm.features.samples == SEQ + 1


def test_inline_signals_are_not_prepared_ahead() -> None:
    sig = ModelSignal(model(torch.jit.script(LastRowUp())))
    mm = MarketMaker(SEI_USDC, QuoteParams(), RiskLimits(), book=book(), signal=sig)
    assert not mm.prepare_signal(MS)
    assert mm.features.samples == 0
    mm.cycle(MS)
    assert mm.features.samples == 1 and sig.fallback_cycles == 1  # inline, as before
    for k in range(SEQ):
        mm.cycle((k + 2) * MS)
    figs = mm.signal_figures()
    assert figs is not None
    assert (figs["cycles"], figs["warmup_cycles"], figs["live_cycles"]) == (SEQ + 1, SEQ - 1, 2)
    assert figs["live_share"] == 1.0 and figs["age_p99_ms"] == 0.0


def test_the_collector_exports_the_signal_age_and_the_live_share(
    signals: list[BackgroundModelSignal],
) -> None:
    sig = background(signals, torch.jit.script(LastRowUp()))
    mm = MarketMaker(SEI_USDC, QuoteParams(), RiskLimits(), book=book(), signal=sig)
    fill_window(sig, 0)
    sig.current(feats(0.0), 30 * MS, 100.0)
    sig.current(feats(0.0), 300 * MS, 100.0)
    fams = {f.name: f for f in HotPathCollector(lambda: [mm]).collect()}
    age = {s.name: s.value for s in fams["flashmm_model_signal_age_seconds"].samples}
    assert age["flashmm_model_signal_age_seconds_count"] == 2
    assert age["flashmm_model_signal_age_seconds_sum"] == pytest.approx(0.33)
    assert fams["flashmm_model_live_signal_share"].samples[0].value == pytest.approx(0.5)
    assert fams["flashmm_model_live_signal_cycles"].samples[0].value == 1
    assert mm.signal_figures() is not None


class Tracking(MarketMaker):
    """Logs, per cycle: (reactive, features sampled ahead, prepares so far, samples taken)."""

    def __init__(self, sig: BackgroundModelSignal) -> None:
        super().__init__(SEI_USDC, QuoteParams(), RiskLimits(), signal=sig)
        self.log: list[tuple[bool, bool, int, int]] = []
        self.prepares = 0

    def prepare_signal(self, now_ns: int) -> bool:
        self.prepares += 1
        return super().prepare_signal(now_ns)

    def cycle(self, now_ns: int, reactive: bool = False) -> OrderBatch:
        before, ahead = self.features.samples, self._prepared is not None
        batch = super().cycle(now_ns, reactive)
        self.log.append((reactive, ahead, self.prepares, self.features.samples - before))
        return batch


def test_the_live_loop_samples_ahead_and_quotes_on_fresh_model_signals(
    signals: list[BackgroundModelSignal],
) -> None:
    sig = background(signals, torch.jit.script(LastRowUp()), lead_ms=20.0, max_age_ms=100.0)

    async def run() -> Tracking:
        mm = Tracking(sig)
        venue = InProcessVenue(SEI_USDC, MarketParams(seed=3, warmup_s=5))
        loop = QuoteLoop(mm, venue, LoopConfig(quote_hz=20, shutdown_timeout_s=1.0))
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(1.5, stop.set)
        await asyncio.wait_for(loop.run(stop), 20)
        await venue.close()
        assert loop._signal_lead_s() == pytest.approx(0.02)
        return mm

    mm = asyncio.run(run())
    assert mm.stats.cycles > SEQ + 2 and len(mm.log) == mm.stats.cycles
    # a cycle whose features were sampled ahead, and a reactive one once the loop samples
    # ahead, take no sample of their own: the window keeps the scheduled cadence
    assert all(
        n == 0 for reactive, ahead, prepares, n in mm.log if ahead or (reactive and prepares)
    )
    assert sum(ahead for _, ahead, _, _ in mm.log) >= mm.stats.cycles // 2
    assert sig.inferences >= 1 and sig.live_cycles >= 1
    assert sig.cycles == mm.stats.cycles


def test_a_loop_with_a_recorder_samples_in_the_cycle(
    signals: list[BackgroundModelSignal], tmp_path: object
) -> None:
    from pathlib import Path

    from flashmm.ml.recording import SessionWriter

    sig = background(signals, torch.jit.script(LastRowUp()))
    mm = MarketMaker(SEI_USDC, QuoteParams(), RiskLimits(), signal=sig)
    venue = InProcessVenue(SEI_USDC, MarketParams(seed=3, warmup_s=5))
    rec = SessionWriter(Path(str(tmp_path)), "SEI_USDC")
    loop = QuoteLoop(mm, venue, recorder=rec)
    loop.feed.ready = True
    assert loop._signal_lead_s() == 0.0  # recorded samples stay in the cycle, in order
    rec.close()


def test_a_backtest_with_an_inline_model_is_deterministic() -> None:
    from hotpath.backtest import BacktestConfig, run_backtest
    from tests.unit.test_engine_backtest import _stable

    def once() -> tuple[dict[str, object], list[tuple[float, int, int, int]], tuple[float, ...]]:
        sig = ModelSignal(model(torch.jit.script(LastRowUp())), budget_us=1e9)
        res = run_backtest(BacktestConfig(minutes=1, market=MarketParams(seed=5)), signal=sig)
        return _stable(res.summary), res.fills, (sig.fallback_cycles, float(len(sig.outcomes)))

    first = once()
    assert first[2][0] == SEQ - 1  # the model ran in every cycle after the warm-up
    assert once() == first


def test_the_settings_refuse_a_lead_that_is_not_below_the_max_age() -> None:
    from pydantic import ValidationError

    from flashmm.config.ml import MLSettings

    ml = MLSettings()
    assert ml.background and ml.signal_lead_ms < ml.max_signal_age_ms
    with pytest.raises(ValidationError, match="signal_lead_ms"):
        MLSettings(signal_lead_ms=100.0, max_signal_age_ms=100.0)
    with pytest.raises(ValidationError):
        MLSettings(max_signal_age_ms=0.0)
    with pytest.raises(ValueError, match="lead_ms"):
        BackgroundModelSignal(None, max_age_ms=10.0, lead_ms=10.0)
