"""Chronological splits with a gap, held-out sets by recording, the no-change and imbalance
baselines, and the comparison against the imbalance baseline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from flashmm.marketdata.store import EventStore
from flashmm.ml.calibration import horizon_metrics
from flashmm.ml.dataset import FLAT, Dataset
from flashmm.ml.evaluate import EvalModel, logits_on, no_change_model, versus_imbalance
from flashmm.ml.realdata import (
    IMBALANCE_WIDE,
    TICK_FREE,
    Splits,
    build,
    build_phases,
    concat,
    held_out,
    split,
    training_sets,
)
from flashmm.ml.schema import FEATURE_NAMES
from flashmm.ml.train import train, window_index

H = ["100ms", "200ms", "500ms"]


@pytest.fixture(scope="module")
def btc24(real_store: Callable[[str], Path]) -> Dataset:
    return build(EventStore.open(real_store("btc-usdm-2024")))


def test_splits_are_by_time_with_a_gap_never_shuffled(btc24: Dataset) -> None:
    tr, va, te = split(btc24, Splits(val_frac=0.15, test_frac=0.25, gap_s=10.0))
    assert np.all(np.diff(tr.ts) > 0) and np.all(np.diff(va.ts) > 0) and np.all(np.diff(te.ts) > 0)
    assert tr.ts[-1] + 10e9 <= va.ts[0]
    assert va.ts[-1] + 10e9 <= te.ts[0]
    # every label window of one part ends before the next part starts
    assert tr.ts[-1] + 0.5e9 < va.ts[0] and va.ts[-1] + 0.5e9 < te.ts[0]
    n = len(btc24)
    assert 0.58 < len(tr) / n < 0.61 and 0.20 < len(te) / n < 0.25
    assert len(tr) + len(va) + len(te) < n  # the gaps are dropped
    with pytest.raises(ValueError, match="gap"):
        Splits(gap_s=0.2)


def test_joined_parts_never_share_a_history_window(real_store: Callable[[str], Path]) -> None:
    stores = [EventStore.open(real_store(n)) for n in ("btc-usdm-2023", "btc-usdm-2024")]
    tr, va, ranges = training_sets(stores, Splits())
    assert [r["store"] for r in ranges] == [Path(s.path).name for s in stores]
    assert ranges[1]["test"]["from_utc"] > ranges[1]["val"]["to_utc"]
    joined = concat([tr, va])  # 2023 train, 2024 train, 2023 val, 2024 val
    idx = window_index(joined.ts, 16)
    step = np.diff(joined.ts)
    for i in idx:  # each window is 16 consecutive 100 ms samples of one recording
        assert np.all(step[i - 15 : i] == 100_000_000)


def test_held_out_is_the_later_tail_of_a_training_recording_else_all_of_it(
    real_store: Callable[[str], Path], btc24: Dataset
) -> None:
    store = EventStore.open(real_store("btc-usdm-2024"))
    sha = str(btc24.meta["events_sha256"])
    tail, role = held_out(store, {sha}, Splits())
    assert role.startswith("later-time tail")
    assert np.array_equal(tail.ts, split(btc24, Splits())[2].ts)
    whole, role = held_out(store, {"another-store"}, Splits())
    assert role == "not trained on" and len(whole) == len(btc24)


def test_no_change_predicts_flat_with_training_frequencies(btc24: Dataset) -> None:
    tr, _, te = split(btc24, Splits())
    m = no_change_model(tr.y)
    logits, labels = logits_on(m, te, 1)
    probs = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()
    assert np.all(probs.argmax(-1) == FLAT)
    for k in range(3):
        freq = (np.bincount(tr.y[:, k], minlength=3) + 1) / (len(tr) + 3)
        assert np.allclose(probs[0, k], freq, atol=1e-6)
    met = horizon_metrics(logits, labels, H)
    for j, h in enumerate(H):
        assert met[h]["accuracy"] == pytest.approx(np.mean(labels[:, j] == FLAT))
        assert met[h]["n_moved"] == int(np.sum(labels[:, j] != FLAT))


def test_logistic_baseline_is_the_imbalance_sign_rule_and_beats_no_change(
    btc24: Dataset,
) -> None:
    tr, va, te = split(btc24, Splits())
    res = train(tr, va, "logistic", seq_len=1, threads=1, quiet=True)
    logits, labels = logits_on(no_change_model(tr.y), te, 1)
    base = horizon_metrics(logits, labels, H)
    logits, labels = logits_on(EvalModel(res.calibrated(), res.schema), te, 1)
    met = horizon_metrics(logits, labels, H)
    imb = te.x[:, FEATURE_NAMES.index("imb_1")]
    for j, h in enumerate(H):
        moved = labels[:, j] != FLAT
        sign_rule = np.mean(np.where(imb[moved] > 0, 2, 0) == labels[moved, j])
        # on these large-tick books the imbalance sign alone calls most moves
        assert sign_rule > 0.85
        assert met[h]["accuracy_moved"] >= sign_rule - 0.03
        assert met[h]["nll"] < base[h]["nll"]


def test_versus_imbalance_needs_every_check() -> None:
    def m(nll: float, f1: float, acc: float) -> dict[str, float]:
        return {"nll": nll, "f1_macro": f1, "accuracy_moved": acc}

    metrics = {
        "logistic": {h: m(0.3, 0.3, 0.9) for h in H},
        "mlp": {h: m(0.29, 0.4, 0.95) for h in H},
    }
    assert versus_imbalance(metrics, "mlp")["beats_all"] is True
    metrics["mlp"]["200ms"] = m(0.29, 0.4, 0.9)  # a tie on accuracy_moved is not a win
    v = versus_imbalance(metrics, "mlp")
    assert v["beats_all"] is False and v["checks"]["accuracy_moved_200ms"] is False
    assert v["checks"]["nll_500ms"] is True
    assert versus_imbalance(metrics, "logistic") == {}


def test_phases_are_interleaved_grids_at_the_same_cadence(
    real_store: Callable[[str], Path], btc24: Dataset
) -> None:
    store = EventStore.open(real_store("btc-usdm-2024"))
    grids = build_phases(store, 100, 2)
    assert np.array_equal(grids[0].x, btc24.x) and np.array_equal(grids[0].y, btc24.y)
    assert grids[1].ts[0] - grids[0].ts[0] == 50_000_000
    assert np.all(np.diff(grids[1].ts) % 100_000_000 == 0)  # each grid keeps the 100 ms step
    with pytest.raises(ValueError, match="phases"):
        build_phases(store, 100, 3)  # 100 ms is no whole number of ns / 3
    tr, va, _ = training_sets([store], Splits(), phases=2)
    one, _, _ = training_sets([store], Splits())
    assert 1.9 < len(tr) / len(one) < 2.1
    for i in window_index(tr.ts, 16):  # a history window never mixes the two grids
        assert np.all(np.diff(tr.ts[i - 15 : i + 1]) == 100_000_000)
    tail, _ = held_out(store, {str(btc24.meta["events_sha256"])}, Splits(), phases=2)
    assert tail.ts.min() >= va.ts.max() + 10e9


def test_residual_mlp_starts_as_the_imbalance_regression(btc24: Dataset) -> None:
    tr, va, te = split(btc24, Splits())
    kw = {"inputs": TICK_FREE, "wide": IMBALANCE_WIDE}
    start = train(tr, va, "mlp", epochs=0, seq_len=1, threads=1, quiet=True, model_kwargs=kw,
                  residual=True)  # fmt: skip
    logistic = train(tr, va, "logistic", seq_len=1, threads=1, quiet=True)
    a, _ = logits_on(EvalModel(start.model, start.schema), te, 1)
    b, _ = logits_on(EvalModel(logistic.model, logistic.schema), te, 1)
    pa, pb = torch.softmax(torch.from_numpy(a), -1), torch.softmax(torch.from_numpy(b), -1)
    assert start.best_epoch == 0 and torch.allclose(pa, pb, atol=5e-3)  # the same regression
    res = train(tr, va, "mlp", epochs=2, patience=2, seq_len=1, threads=1, quiet=True,
                model_kwargs=kw, residual=True)  # fmt: skip
    wide = res.model.wide  # type: ignore[union-attr]
    assert torch.equal(wide.weight, start.model.wide.weight)  # type: ignore[union-attr]
    assert res.config["residual"] is True
