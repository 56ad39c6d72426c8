"""Labelled datasets from recorded real order books (imported event stores).

A ``ReplayCore`` with no orders of ours is advanced to each sample time on the local clock (the
feed timeline the hot path would see: recorded latency, or a constant); the market's trades
go into ``FeatureEngine.on_trade`` and the 64 features are sampled from a ``ReplayBook``, the
same code the hot path runs. Labels come from the *exchange* book of the same core, which runs
on exchange time: the label of a sample at ``t`` for horizon ``h`` is the sign of
``exchange mid(t + h) - local mid(t)`` (the move from the mid we see to the true mid ``h``
later), DOWN/FLAT/UP with a dead band (default 0: any move counts).

Splits are chronological per store, never random: train, then validation, then test, with a
gap of ``gap_s`` between them (longer than the longest horizon, so no label looks across).

Denser data without changing the cadence: ``phases`` > 1 samples the same recording on
``phases`` interleaved grids, each every ``sample_ms`` (offset by ``sample_ms / phases``), each
with its own ``FeatureEngine``, so every row's features mean what they mean at the
``sample_ms`` cadence the hot path runs at (several features count samples, e.g. ``ofi_5``,
``imb_1_change``). The grids are joined as separate sessions and split by one common time
range per store.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flashmm.marketdata.store import EventStore
from flashmm.ml.dataset import DOWN, FLAT, HORIZONS_S, UP, Dataset
from flashmm.ml.features import FeatureEngine
from flashmm.ml.schema import FEATURE_NAMES, N_FEATURES
from flashmm.replay import native as nv
from flashmm.replay.book import ReplayBook
from flashmm.replay.core import ReplayCore, warm_up
from flashmm.replay.feed import prepare

SAMPLE_MS = 100
GAP_S = 10.0
# Features in no instrument's units (no ticks-as-bps, no lots): imbalances, order flow scaled
# by depth, trade signs, depth-shape ratios, times; what a model may read to carry over to an
# instrument it never saw. ``spread_ticks`` is kept: on large-tick markets it is 1 nearly always.
TICK_FREE: tuple[str, ...] = tuple(FEATURE_NAMES[i] for i in (9, *range(12, 31), *range(52, 59)))
IMBALANCE_WIDE: tuple[str, ...] = ("imb_1", "imb_3", "imb_5")


@dataclass(frozen=True)
class Splits:
    """Per-store chronological fractions: train | gap | val | gap | test."""

    val_frac: float = 0.15
    test_frac: float = 0.25
    gap_s: float = GAP_S

    def __post_init__(self) -> None:
        if not (0 < self.val_frac < 1 and 0 <= self.test_frac < 1):
            raise ValueError("val/test fractions must be in (0, 1) and [0, 1)")
        if self.val_frac + self.test_frac >= 1:
            raise ValueError("val + test fractions must leave a training part")
        if self.gap_s < max(HORIZONS_S):
            raise ValueError(f"the gap must be at least the longest horizon ({max(HORIZONS_S)} s)")

    def to_json(self) -> dict[str, float]:
        return {"val_frac": self.val_frac, "test_frac": self.test_frac, "gap_s": self.gap_s}


def store_info(store: EventStore) -> dict[str, Any]:
    """What identifies a store in a card: name, symbol, files, time range, events sha256."""
    m = store.manifest.to_json()
    return {
        "name": Path(store.path).name,
        "path": str(store.path),
        "symbol": m["instrument"]["symbol"],
        "tick": m["instrument"]["tick"],
        "lot": m["instrument"]["lot"],
        "files": [f["name"] for f in m.get("files", [])],
        "first_utc": m["time_range"]["first_utc"],
        "minutes": round(m["time_range"].get("seconds", 0.0) / 60.0, 2)
        if "seconds" in m["time_range"]
        else None,
        "events_sha256": m.get("events_sha256"),
    }


def _exchange_mid(core: ReplayCore) -> float:
    S, px = core.S, core.a.px
    bb, ba = int(S[nv.EX_BB]), int(S[nv.EX_BA])
    if bb < 0 or ba >= len(px):
        return math.nan
    return (int(px[bb]) + int(px[ba])) * 0.5


def build(
    store: EventStore,
    sample_ms: int = SAMPLE_MS,
    horizons_s: tuple[float, ...] = HORIZONS_S,
    feed_latency_ns: int | None = None,
    dead_band_ticks: float = 0.0,
    offset_ns: int = 0,
) -> Dataset:
    """Features every ``sample_ms`` on the local clock (a grid shifted by ``offset_ns``),
    labelled from the exchange mid."""
    step = sample_ms * 1_000_000
    if not 0 <= offset_ns < step:
        raise ValueError("the grid offset must be in [0, sample_ms)")
    offsets = [round(h * 1e9 / step) for h in horizons_s]
    if any(o * step != round(h * 1e9) for o, h in zip(offsets, horizons_s, strict=True)):
        raise ValueError("horizons must be multiples of the sample step")
    arrays = prepare(store, feed_latency_ns)
    if arrays.events == 0:
        raise ValueError(f"store {store.path} has no events")
    warm_up()
    core = ReplayCore(arrays, 0, 0)
    book = ReplayBook(core)
    fe = FeatureEngine()
    t = -(-core.first_local_ns // step) * step + offset_ns
    end = int(max(arrays.local.max(), arrays.exch.max()))
    n_grid = (end - t) // step + 1
    ex_mid = np.full(n_grid, math.nan)
    xs: list[list[float]] = []
    rows: list[int] = []
    loc_mid: list[float] = []
    for k in range(n_grid):
        tk = t + k * step
        while core.advance(tk) == nv.STOP_FULL:
            _feed_trades(fe, core)
        _feed_trades(fe, core)
        book.refresh()
        ex_mid[k] = _exchange_mid(core)
        if book.best_bid and book.best_ask:
            xs.append(list(fe.sample(book, tk)))
            rows.append(k)
            loc_mid.append(book.mid)
    idx = np.asarray(rows, dtype=np.int64)
    mid_now = np.asarray(loc_mid, dtype=np.float64)
    y = np.full((len(idx), len(offsets)), FLAT, dtype=np.int64)
    ok = np.ones(len(idx), dtype=bool)
    for j, o in enumerate(offsets):
        later_idx = idx + o
        inside = later_idx < n_grid
        later = np.where(inside, ex_mid[np.minimum(later_idx, n_grid - 1)], math.nan)
        ok &= np.isfinite(later)
        d = np.nan_to_num(later - mid_now)
        y[:, j] = np.where(d > dead_band_ticks, UP, np.where(d < -dead_band_ticks, DOWN, FLAT))
    x = np.asarray(xs, dtype=np.float32).reshape(-1, N_FEATURES)
    info = store_info(store)
    info.update(
        {
            "sample_ms": sample_ms,
            "feed_latency_ns": feed_latency_ns,
            "feed_shift_ns": arrays.feed_shift_ns,
            "dead_band_ticks": dead_band_ticks,
            "offset_ns": offset_ns,
            "label": "sign(exchange mid(t+h) - local mid(t))",
        }
    )
    ts = t + idx * step
    return Dataset(x[ok], y[ok], ts[ok], mid_now[ok], tuple(horizons_s), info)


def build_phases(
    store: EventStore,
    sample_ms: int = SAMPLE_MS,
    phases: int = 1,
    feed_latency_ns: int | None = None,
) -> list[Dataset]:
    """``build`` on ``phases`` grids of step ``sample_ms``, offset by ``sample_ms / phases``."""
    step = sample_ms * 1_000_000
    if phases < 1 or step % phases:
        raise ValueError("phases must be >= 1 and divide the sample step (in ns)")
    return [
        build(store, sample_ms, feed_latency_ns=feed_latency_ns, offset_ns=k * step // phases)
        for k in range(phases)
    ]


def _feed_trades(fe: FeatureEngine, core: ReplayCore) -> None:
    for ts, price, lots, aggressor, _ in core.take_trades().tolist():
        fe.on_trade(ts, price, lots, aggressor)


def take(d: Dataset, mask: np.ndarray) -> Dataset:
    """The rows of ``d`` where ``mask`` holds (order kept)."""
    return Dataset(d.x[mask], d.y[mask], d.ts[mask], d.mid[mask], d.horizons_s, dict(d.meta))


def split(
    d: Dataset, splits: Splits, bounds: tuple[int, int] | None = None
) -> tuple[Dataset, Dataset, Dataset]:
    """(train, val, test) by time: train | gap | val | gap | test, each a contiguous span of
    the time range ``bounds`` (default: ``d``'s first to last timestamp)."""
    t0, t1 = bounds or (int(d.ts[0]), int(d.ts[-1]))
    span = t1 - t0
    a = t0 + span * (1.0 - splits.val_frac - splits.test_frac)
    b = t0 + span * (1.0 - splits.test_frac)
    gap = splits.gap_s * 1e9
    ts = d.ts
    train = take(d, ts < a)
    val = take(d, (ts >= a + gap) & (ts < b))
    test = take(d, ts >= b + gap) if splits.test_frac > 0 else take(d, ts < t0)
    for part, name in ((train, "train"), (val, "val"), (test, "test")):
        part.meta = {**d.meta, "part": name, "rows": len(part)}
        if len(part):
            part.meta["from_ns"], part.meta["to_ns"] = int(part.ts[0]), int(part.ts[-1])
    return train, val, test


def split_phases(grids: list[Dataset], splits: Splits) -> tuple[Dataset, Dataset, Dataset]:
    """``split`` of each grid of one store by the first grid's time range, the parts joined
    grid after grid (each grid a session of its own)."""
    bounds = (int(grids[0].ts[0]), int(grids[0].ts[-1]))
    parts = [split(g, splits, bounds) for g in grids]
    if len(parts) == 1:
        return parts[0]
    out: list[Dataset] = []
    for k in range(3):
        joined = Dataset.concat([p[k] for p in parts])
        joined.meta = {**parts[0][k].meta, "rows": len(joined), "phases": len(grids)}
        out.append(joined)
    return out[0], out[1], out[2]


def concat(parts: list[Dataset]) -> Dataset:
    """Parts joined in order; ``train.window_index`` starts a new session at each join."""
    out = Dataset.concat(parts)
    out.meta = {"parts": [p.meta for p in parts]}
    return out


def fingerprint(d: Dataset) -> str:
    h = hashlib.sha256(np.ascontiguousarray(d.x).tobytes())
    h.update(np.ascontiguousarray(d.y).tobytes())
    return h.hexdigest()[:16]


def training_sets(
    stores: list[EventStore],
    splits: Splits,
    sample_ms: int = SAMPLE_MS,
    feed_latency_ns: int | None = None,
    phases: int = 1,
) -> tuple[Dataset, Dataset, list[dict[str, Any]]]:
    """(train, val, per-store split ranges): each store split by time, the parts joined."""
    trs: list[Dataset] = []
    vas: list[Dataset] = []
    ranges: list[dict[str, Any]] = []
    for s in stores:
        grids = build_phases(s, sample_ms, phases, feed_latency_ns)
        tr, va, te = split_phases(grids, splits)
        if not len(tr) or not len(va):
            raise ValueError(f"{s.path}: too short for the train/val split")
        trs.append(tr)
        vas.append(va)
        ranges.append(
            {
                "store": Path(s.path).name,
                "events_sha256": s.manifest.to_json().get("events_sha256"),
                **{str(p.meta["part"]): _span(p) for p in (tr, va, te)},
            }
        )
    return concat(trs), concat(vas), ranges


def held_out(
    store: EventStore,
    trained_on: set[str],
    splits: Splits,
    sample_ms: int = SAMPLE_MS,
    feed_latency_ns: int | None = None,
    phases: int = 1,
) -> tuple[Dataset, str]:
    """The held-out rows of ``store``: its test tail when its events sha256 is among
    ``trained_on`` (a later time than its training part), else all of it (on ``phases``
    interleaved grids, each a session of its own)."""
    grids = build_phases(store, sample_ms, phases, feed_latency_ns)
    if grids[0].meta.get("events_sha256") in trained_on:
        return split_phases(grids, splits)[2], "later-time tail of a training recording"
    if len(grids) == 1:
        return grids[0], "not trained on"
    whole = Dataset.concat(grids)
    whole.meta = {**grids[0].meta, "rows": len(whole), "phases": len(grids)}
    return whole, "not trained on"


def _span(d: Dataset) -> dict[str, Any]:
    from datetime import UTC, datetime

    if not len(d):
        return {"rows": 0}

    def utc(ns: int) -> str:
        return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds")

    return {"rows": len(d), "from_utc": utc(int(d.ts.min())), "to_utc": utc(int(d.ts.max()))}
