"""Live inference: the model signal the quote loop asks once per cycle.

* TorchScript on one thread with a preallocated input: each cycle's normalised feature row
  is written twice into a (2·seq, 64) buffer so the last ``seq`` rows are always one
  contiguous view — no copy, no allocation for the window;
* a circuit breaker: a missing model, ``slow_trip`` over-budget inferences in a row, or an
  error sends the cycle to the cheap fallback; after ``cooldown_s`` one trial inference
  decides whether to close it again. Quoting never waits for the model;
* hot swap: a new artifact is loaded and warmed up off the loop, then switched in between
  two cycles; ``rollback`` restores the previous one; a shadow model runs beside the live
  one after the cycle and both predictions are kept;
* live accuracy per horizon, scored when each horizon's outcome is known.

``ModelSignal.predict`` runs the model inline, in the cycle (backtests, replays: the same
input gives the same result). The live hot path uses ``BackgroundModelSignal``
(``background_signal.py``), which runs ``infer`` on its own thread, off the cycle.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from flashmm.ml.dataset import horizon_name
from flashmm.ml.schema import FeatureSchema, check_compatible

log = logging.getLogger(__name__)
IMB_1 = 12  # index of imb_1 in the schema (used by the fallback)


@dataclass
class Model:
    """A loaded artifact: TorchScript module, its feature schema and card."""

    module: Any
    schema: FeatureSchema
    version: str
    horizons_s: tuple[float, ...]
    seq_len: int = 32
    card: dict[str, Any] = field(default_factory=dict)


def load_model(path: str) -> Model:
    """Load and warm up an exported artifact (refuses a mismatched feature schema)."""
    from flashmm.ml.export import load

    loaded = load(path)
    check_compatible(loaded.schema)
    card = loaded.card
    m = Model(
        loaded.module,
        loaded.schema,
        str(card.get("version", path)),
        tuple(card.get("horizons_s", (0.1, 0.2, 0.5))),
        int(card.get("seq_len", 32)),
        card,
    )
    warm_up(m)
    return m


def warm_up(m: Model, n: int = 20) -> None:
    x = torch.zeros(1, m.seq_len, len(m.schema.names))
    with torch.inference_mode():
        for _ in range(n):
            m.module(x)


class FallbackSignal:
    """Cheap and always available: order-book imbalance at the touch, low confidence."""

    uses_features = True

    def predict(self, features: list[float], ts_ns: int, mid: float) -> tuple[float, float]:
        imb = features[IMB_1]
        return math.tanh(2.0 * imb), 0.5 + 0.1 * abs(imb)

    def observe(self, ts_ns: int, mid: float) -> None:
        return None


@dataclass
class Accuracy:
    """Outcomes of past predictions for one horizon (last ``window`` non-flat moves)."""

    window: int = 500
    hits: deque[int] = field(default_factory=deque)
    scored: int = 0

    def add(self, hit: bool) -> None:
        self.hits.append(1 if hit else 0)
        if len(self.hits) > self.window:
            self.hits.popleft()
        self.scored += 1

    @property
    def value(self) -> float:
        return sum(self.hits) / len(self.hits) if self.hits else float("nan")


class ModelSignal:
    uses_features = True

    def __init__(
        self,
        model: Model | None,
        horizon_s: float = 0.2,
        budget_us: float = 1000.0,
        slow_trip: int = 3,
        error_trip: int = 1,
        cooldown_s: float = 10.0,
        threads: int = 1,
    ) -> None:
        # one thread: the hot path owns one core, and thread-pool hand-offs on tiny tensors
        # cost milliseconds when the other cores are busy
        torch.set_num_threads(threads)
        self.fallback = FallbackSignal()
        self.horizon_s = horizon_s
        self.budget_ns = int(budget_us * 1000)
        self.slow_trip = slow_trip
        self.error_trip = error_trip
        self.cooldown_ns = int(cooldown_s * 1e9)
        self.model: Model | None = None
        self.previous: Model | None = None
        self.shadow: Model | None = None
        self.open_until = 0
        self._now_ns = 0  # the latest cycle time seen: the breaker is open while before open_until
        self.open_reason = "no model" if model is None else ""
        self.slow_in_row = 0
        self.errors = 0
        self.trips = 0
        self.fallback_cycles = 0
        self.last_latency_ns = 0
        self.accuracy: dict[str, Accuracy] = {}
        self._pending: list[deque[tuple[int, float, int]]] = []
        self._h_ns: list[int] = []
        self._acc: list[Accuracy] = []
        self._mid_held = 0.0
        self._names: list[str] = []
        # scored predictions for the stores: (ts, horizon, predicted, realised), 0/1/2 classes
        self.outcomes: deque[tuple[int, str, int, int]] = deque(maxlen=5000)
        self.shadow_log: deque[tuple[int, tuple[int, ...], tuple[int, ...]]] = deque(maxlen=2000)
        self._last_pred: tuple[int, ...] = ()
        self._seq = 32
        self._rows = 0
        self._i = 0
        self._buf = np.zeros((64, 64), dtype=np.float32)
        self._mean = np.zeros(64, dtype=np.float32)
        self._inv_std = np.ones(64, dtype=np.float32)
        self._clip = 10.0
        self._h_index = 1
        if model is not None:
            self._install(model)

    # --- model management ---------------------------------------------------------------
    def _install(self, m: Model) -> None:
        if m.seq_len != self._seq or self._buf.shape[1] != len(m.schema.names):
            self._seq = m.seq_len
            self._buf = np.zeros((2 * m.seq_len, len(m.schema.names)), dtype=np.float32)
            self._rows = self._i = 0
        self._mean = np.asarray(m.schema.mean, dtype=np.float32)
        self._inv_std = 1.0 / np.asarray(m.schema.std, dtype=np.float32)
        self._clip = m.schema.clip
        self._h_index = min(
            range(len(m.horizons_s)), key=lambda j: abs(m.horizons_s[j] - self.horizon_s)
        )
        with torch.inference_mode():  # first calls of an op are slow: not on a live cycle
            for _ in range(5):
                torch.softmax(torch.zeros(len(m.horizons_s), 3), dim=-1).tolist()
        self.model = m
        self.open_until = 0
        self.open_reason = ""
        self.slow_in_row = 0
        for h in m.horizons_s:
            self.accuracy.setdefault(horizon_name(h), Accuracy())
        self._pending = [deque() for _ in m.horizons_s]
        self._h_ns = [int(h * 1e9) for h in m.horizons_s]
        self._acc = [self.accuracy[horizon_name(h)] for h in m.horizons_s]
        self._names = [horizon_name(h) for h in m.horizons_s]

    def promote(self, m: Model) -> None:
        """Switch to ``m`` now (call between cycles); the current model becomes previous."""
        self.previous = self.model
        self._install(m)
        log.info("model %s is live", m.version)

    def rollback(self) -> bool:
        if self.previous is None:
            return False
        back, self.previous = self.previous, self.model
        self._install(back)
        log.warning("rolled back to model %s", back.version)
        return True

    async def load_and_promote(self, path: str) -> Model:
        """Load and warm up off the event loop, then switch in between two cycles."""
        m = await asyncio.to_thread(load_model, path)
        self.promote(m)
        return m

    # --- per cycle ----------------------------------------------------------------------
    def predict(self, features: list[float], ts_ns: int, mid: float) -> tuple[float, float]:
        """Inline: push this cycle's row and run the model on the window now."""
        if not self.push_row(features) or not self.ready(ts_ns):
            self.fallback_cycles += 1
            return self.fallback.predict(features, ts_ns, mid)
        out = self.infer(self._buf[self._i : self._i + self._seq], ts_ns, mid)
        if out is None:
            self.fallback_cycles += 1
            return self.fallback.predict(features, ts_ns, mid)
        return out

    def push_row(self, features: list[float]) -> bool:
        """Normalise ``features`` into the window; True once the window holds ``seq`` rows."""
        buf = self._buf
        seq = self._seq
        row = (np.asarray(features, dtype=np.float32) - self._mean) * self._inv_std
        np.clip(row, -self._clip, self._clip, out=row)
        i = self._i
        buf[i] = row
        buf[i + seq] = row
        self._i = (i + 1) % seq
        self._rows += 1
        return self._rows >= seq

    def window(self) -> np.ndarray:
        """The last ``seq`` rows, oldest first (a view: copy it to hand it to a thread)."""
        return self._buf[self._i : self._i + self._seq]

    def ready(self, ts_ns: int) -> bool:
        """A model is loaded, the window is full and the breaker is closed at ``ts_ns``."""
        self._now_ns = ts_ns
        return self.model is not None and self._rows >= self._seq and ts_ns >= self.open_until

    def infer(self, window: np.ndarray, ts_ns: int, mid: float) -> tuple[float, float] | None:
        """Run the live model on ``window`` (seq, n_features): (direction, confidence), or
        None when it failed (the breaker counts it). Times it against the budget."""
        m = self.model
        if m is None:
            return None
        x = torch.from_numpy(window).unsqueeze(0)
        t0 = time.perf_counter_ns()
        try:
            with torch.inference_mode():
                probs = torch.softmax(m.module(x)[0], dim=-1)
        except Exception as e:  # a failing model must never reach the quote loop
            self.errors += 1
            log.error("model %s failed: %s", m.version, e)
            if self.errors >= self.error_trip:
                self._trip(ts_ns, f"error: {type(e).__name__}")
            return None
        self.last_latency_ns = dt = time.perf_counter_ns() - t0
        if dt > self.budget_ns:
            self.slow_in_row += 1
            if self.slow_in_row >= self.slow_trip:
                self._trip(ts_ns, f"slow: {dt / 1000:.0f} µs over budget {self.slow_in_row}×")
        else:
            self.slow_in_row = 0
        p = probs.tolist()
        classes = tuple(max(range(3), key=lambda c, r=r: r[c]) for r in p)  # type: ignore[misc]
        self._last_pred = classes
        for j, q in enumerate(self._pending):
            q.append((ts_ns, mid, classes[j]))
        down, _, up = p[self._h_index]
        return up - down, max(up, down)

    def _trip(self, ts_ns: int, reason: str) -> None:
        self.trips += 1
        self.open_until = ts_ns + self.cooldown_ns
        self.open_reason = reason
        self.slow_in_row = 0
        log.warning("model circuit breaker open for %.0fs: %s", self.cooldown_ns / 1e9, reason)

    def after_cycle(self, ts_ns: int) -> None:
        """Run the shadow model (outside the timed cycle) and keep both predictions."""
        if self._rows >= self._seq:
            entry = self.run_shadow(self.window(), ts_ns)
            if entry is not None:
                self.shadow_log.append(entry)

    def run_shadow(
        self, window: np.ndarray, ts_ns: int
    ) -> tuple[int, tuple[int, ...], tuple[int, ...]] | None:
        """The shadow model on the live model's last window: (ts, live, shadow) classes."""
        s = self.shadow
        if s is None or s.seq_len != len(window):
            return None
        x = torch.from_numpy(window).unsqueeze(0)
        try:
            with torch.inference_mode():
                p = torch.softmax(s.module(x)[0], dim=-1).tolist()
        except Exception as e:
            log.error("shadow model %s failed: %s", s.version, e)
            return None
        shadow = tuple(max(range(3), key=lambda c, r=r: r[c]) for r in p)  # type: ignore[misc]
        return ts_ns, self._last_pred, shadow

    # --- live accuracy ------------------------------------------------------------------
    def observe(self, ts_ns: int, mid: float) -> None:
        """Every book change: score predictions whose horizon ended before ``ts_ns`` with
        the mid that held at that moment (non-flat outcomes only)."""
        held = self._mid_held
        self._mid_held = mid
        if not held:
            return
        for j, q in enumerate(self._pending):
            h_ns = self._h_ns[j]
            acc = self._acc[j]
            while q and q[0][0] + h_ns <= ts_ns:
                t0, mid0, predicted = q.popleft()
                realised = 1 if held == mid0 else (2 if held > mid0 else 0)
                if realised != 1:
                    acc.add(predicted == realised)
                self.outcomes.append((t0, self._names[j], predicted, realised))

    def status(self) -> dict[str, Any]:
        return {
            "model": self.model.version if self.model else None,
            "previous": self.previous.version if self.previous else None,
            "shadow": self.shadow.version if self.shadow else None,
            "breaker_open": self.open_until > self._now_ns,  # closes again after the cool-down
            "breaker_reason": self.open_reason,
            "trips": self.trips,
            "fallback_cycles": self.fallback_cycles,
            "latency_us": self.last_latency_ns / 1000,
            "accuracy": {h: a.value for h, a in self.accuracy.items()},
        }
