"""The model signal computed off the quote cycle, on its own thread (the live hot path).

``BackgroundModelSignal`` is a ``ModelSignal`` whose inference runs on a dedicated thread
(TorchScript releases the GIL while it runs). The loop samples a cycle's features a little
ahead of it (``lead_ns``, see ``MarketMaker.prepare_signal``) and ``submit``s them; the
thread runs the model on the newest window (a newer window replaces one not yet started:
latest wins). The cycle never waits: ``current`` returns the latest result if its age (cycle
time minus the time its features were sampled) is at most ``max_age_ns``, else the cheap
fallback. Every cycle records the age of the latest result and whether it was used, which
gives ``live_share`` and the ``flashmm_model_signal_age_seconds`` histogram.

The breaker still guards the model: an inference slower than the lead (it cannot make the
cycle it was started for) counts as slow, errors count as before. Backtests and replays use
the inline ``ModelSignal``: same input, same result.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

import numpy as np

from hotpath.inference import Model, ModelSignal
from hotpath.latency import LatencyHistogram

log = logging.getLogger(__name__)

_Job = tuple[np.ndarray, int, float, int]  # window copy, features ts, mid, model generation


class BackgroundModelSignal(ModelSignal):
    """Inference on a worker thread; the cycle takes the latest fresh result or falls back."""

    def __init__(
        self,
        model: Model | None,
        horizon_s: float = 0.2,
        max_age_ms: float = 100.0,
        lead_ms: float = 20.0,
        slow_trip: int = 3,
        error_trip: int = 1,
        cooldown_s: float = 10.0,
        threads: int = 1,
    ) -> None:
        if not 0 < lead_ms < max_age_ms:
            raise ValueError(f"lead_ms must be in (0, max_age_ms), got {lead_ms}")
        self._lock = threading.Lock()  # the model and its window state vs. the worker
        self._cv = threading.Condition()
        self._job: _Job | None = None
        self._busy = False
        self._closed = False
        self._gen = 0
        self._latest: tuple[int, float, float] | None = None  # (features ts, direction, conf)
        self._shadow_out: deque[tuple[int, tuple[int, ...], tuple[int, ...]]] = deque()
        super().__init__(
            model,
            horizon_s=horizon_s,
            budget_us=lead_ms * 1000.0,  # slower than the lead: the result misses its cycle
            slow_trip=slow_trip,
            error_trip=error_trip,
            cooldown_s=cooldown_s,
            threads=threads,
        )
        self.max_age_ns = int(max_age_ms * 1e6)
        self.lead_ns = int(lead_ms * 1e6)
        self.age = LatencyHistogram()  # age of the latest result at each cycle, ns
        self.cycles = 0
        self.warmup_cycles = 0  # before the window was full: not counted in the share
        self.live_cycles = 0  # quoted on a fresh model signal
        self.stale_cycles = 0  # the latest result was older than max_age
        self.inferences = 0
        self._thread = threading.Thread(target=self._run, name="model-signal", daemon=True)
        self._thread.start()

    # --- model management (loop thread) -------------------------------------------------
    def _install(self, m: Model) -> None:
        with self._lock:  # waits for an inference in flight (between cycles, rare)
            super()._install(m)
            self._gen += 1
            self._latest = None  # results of the previous model are not this model's

    # --- the loop's side ----------------------------------------------------------------
    def submit(self, features: list[float], ts_ns: int, mid: float) -> None:
        """Add this cycle's row to the window and hand the window to the worker (never
        blocks on inference; replaces a window the worker has not started yet)."""
        if not self.push_row(features) or not self.ready(ts_ns):
            return
        job = (self.window().copy(), ts_ns, mid, self._gen)
        with self._cv:
            self._job = job
            self._cv.notify()

    def current(self, features: list[float], ts_ns: int, mid: float) -> tuple[float, float]:
        """The latest model signal if it is fresh at ``ts_ns``, else the fallback."""
        self.cycles += 1
        out = self._shadow_out
        while out:
            self.shadow_log.append(out.popleft())
        latest = self._latest
        if latest is not None:
            age = ts_ns - latest[0]
            self.age.record(age if age > 0 else 0)
            if age <= self.max_age_ns:
                self.live_cycles += 1
                return latest[1], latest[2]
            self.stale_cycles += 1
        elif self.model is not None and self._rows < self._seq:
            self.warmup_cycles += 1
        self.fallback_cycles += 1
        return self.fallback.predict(features, ts_ns, mid)

    def predict(self, features: list[float], ts_ns: int, mid: float) -> tuple[float, float]:
        """A cycle that sampled its own features: start the model on them and quote on the
        latest fresh result meanwhile."""
        self.submit(features, ts_ns, mid)
        return self.current(features, ts_ns, mid)

    def after_cycle(self, ts_ns: int) -> None:
        """The shadow model runs on the worker, after each live inference; its log entries
        reach ``shadow_log`` at the next cycle (only the loop thread touches the log)."""
        return None

    @property
    def live_share(self) -> float | None:
        """Cycles quoted on a fresh model signal over cycles after the warm-up."""
        n = self.cycles - self.warmup_cycles
        return self.live_cycles / n if n > 0 else None

    def status(self) -> dict[str, Any]:
        st = super().status()
        st.update(
            background=True,
            live_share=self.live_share,
            live_cycles=self.live_cycles,
            stale_cycles=self.stale_cycles,
            warmup_cycles=self.warmup_cycles,
            signal_age_p99_ms=self.age.percentile(99) / 1e6,
            max_signal_age_ms=self.max_age_ns / 1e6,
        )
        return st

    def wait_idle(self, timeout_s: float) -> bool:
        """True once no window is waiting or being inferred (tests, shutdown)."""
        with self._cv:
            return self._cv.wait_for(lambda: self._job is None and not self._busy, timeout_s)

    def close(self, timeout_s: float = 2.0) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join(timeout_s)

    # --- the worker thread --------------------------------------------------------------
    def _run(self) -> None:
        cv = self._cv
        while True:
            with cv:
                while self._job is None and not self._closed:
                    cv.wait()
                if self._closed:
                    return
                job, self._job = self._job, None
                self._busy = True
            try:
                self._infer_job(job)
            except Exception:  # never let the worker die: the cycle would only fall back
                log.exception("model signal worker failed")
            finally:
                with cv:
                    self._busy = False
                    cv.notify_all()

    def _infer_job(self, job: _Job | None) -> None:
        if job is None:
            return
        window, ts_ns, mid, gen = job
        with self._lock:
            if gen != self._gen:  # normalised for a model that has been swapped out
                return
            out = self.infer(window, ts_ns, mid)
            if out is None:
                return
            self.inferences += 1
            self._latest = (ts_ns, out[0], out[1])
            if self.shadow is not None:
                entry = self.run_shadow(window, ts_ns)
                if entry is not None:  # handed to the loop thread, which owns shadow_log
                    self._shadow_out.append(entry)
