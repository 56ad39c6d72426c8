"""Labelled data: feature vectors sampled at a fixed cadence and the mid's direction after
each horizon (down / flat / up, with a dead band), generated from the seeded simulator or
from recorded sessions through the same ``FeatureEngine`` the hot path runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from flashmm.ml.features import FeatureEngine
from flashmm.ml.schema import N_FEATURES
from flashmm.sim.market import SimMarket
from flashmm.sim.params import MarketParams

DOWN, FLAT, UP = 0, 1, 2
HORIZONS_S: tuple[float, ...] = (0.1, 0.2, 0.5)


def parse_seeds(text: str) -> list[int]:
    """``"1-8"``, ``"3"`` or ``"1,4,10-12"`` -> sorted unique seeds."""
    seeds: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise ValueError(f"bad seed list {text!r} (e.g. 1-8 or 1,3,5-7)") from None
        if b < a:
            raise ValueError(f"bad seed range {part!r}")
        seeds.update(range(a, b + 1))
    return sorted(seeds)


def horizon_name(h: float) -> str:
    return f"{round(h * 1000)}ms"


@dataclass
class Dataset:
    """``x[i]`` is the feature vector at ``ts[i]``; ``y[i, j]`` the label for horizon j."""

    x: np.ndarray  # (N, 64) float32
    y: np.ndarray  # (N, H) int64
    ts: np.ndarray  # (N,) int64 ns
    mid: np.ndarray  # (N,) float64 ticks
    horizons_s: tuple[float, ...] = HORIZONS_S
    meta: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def windows(self, seq_len: int) -> np.ndarray:
        """Indices i with a full history: sample i uses rows i-seq_len+1 .. i."""
        return np.arange(seq_len - 1, len(self))

    def split(self, frac: float) -> tuple[Dataset, Dataset]:
        """Chronological split (no shuffling across time)."""
        k = int(len(self) * frac)
        a = Dataset(
            self.x[:k], self.y[:k], self.ts[:k], self.mid[:k], self.horizons_s, dict(self.meta)
        )
        b = Dataset(
            self.x[k:], self.y[k:], self.ts[k:], self.mid[k:], self.horizons_s, dict(self.meta)
        )
        return a, b

    @staticmethod
    def concat(parts: list[Dataset]) -> Dataset:
        return Dataset(
            np.concatenate([p.x for p in parts]),
            np.concatenate([p.y for p in parts]),
            np.concatenate([p.ts for p in parts]),
            np.concatenate([p.mid for p in parts]),
            parts[0].horizons_s,
            {"parts": [p.meta for p in parts]},
        )

    def save(self, path: str) -> None:
        np.savez_compressed(
            path, x=self.x, y=self.y, ts=self.ts, mid=self.mid, horizons=np.array(self.horizons_s)
        )

    @classmethod
    def load(cls, path: str) -> Dataset:
        d = np.load(path)
        return cls(d["x"], d["y"], d["ts"], d["mid"], tuple(float(h) for h in d["horizons"]))


def label(mid_now: float, mid_later: float, dead_band_ticks: float) -> int:
    d = mid_later - mid_now
    if d > dead_band_ticks:
        return UP
    if d < -dead_band_ticks:
        return DOWN
    return FLAT


def simulate(
    seed: int,
    minutes: float,
    params: MarketParams | None = None,
    sample_s: float = 0.2,
    horizons_s: tuple[float, ...] = HORIZONS_S,
    grid_s: float = 0.05,
    dead_band_ticks: float = 0.0,
) -> Dataset:
    """Run the seeded market, sampling features every ``sample_s`` and the mid every
    ``grid_s`` (horizons must be multiples of the grid)."""
    p = (params or MarketParams()).with_(seed=seed)
    m = SimMarket(p)
    book = m.exchange.book
    fe = FeatureEngine()
    steps = round(minutes * 60 / grid_s)
    per_sample = round(sample_s / grid_s)
    offsets = [round(h / grid_s) for h in horizons_s]
    if any(abs(o * grid_s - h) > 1e-9 for o, h in zip(offsets, horizons_s, strict=True)):
        raise ValueError("horizons must be multiples of grid_s")
    grid_mid = np.zeros(steps + max(offsets) + 1)
    xs: list[list[float]] = []
    ts: list[int] = []
    rows: list[int] = []
    t = m.time
    for k in range(len(grid_mid)):
        t += grid_s
        while m.next_time <= t:
            m.step()
            if m.exchange.trades:
                tns = int(m.time * 1e9)
                for tr in m.take_trades():
                    fe.on_trade(tns, tr.price, tr.lots, tr.aggressor)
        m.run_until(t)
        grid_mid[k] = book.mid or (grid_mid[k - 1] if k else m.fair)
        if k < steps and k % per_sample == 0 and book.best_bid and book.best_ask:
            tns = int(t * 1e9)
            xs.append(list(fe.sample(book, tns)))
            ts.append(tns)
            rows.append(k)
    idx = np.array(rows)
    mid_now = grid_mid[idx]
    y = np.empty((len(idx), len(offsets)), dtype=np.int64)
    for j, o in enumerate(offsets):
        d = grid_mid[idx + o] - mid_now
        y[:, j] = np.where(d > dead_band_ticks, UP, np.where(d < -dead_band_ticks, DOWN, FLAT))
    x = np.asarray(xs, dtype=np.float32).reshape(-1, N_FEATURES)
    return Dataset(
        x,
        y,
        np.asarray(ts, dtype=np.int64),
        mid_now,
        horizons_s,
        {
            "seed": seed,
            "minutes": minutes,
            "sample_s": sample_s,
            "dead_band_ticks": dead_band_ticks,
        },
    )
