"""Training on small seeded simulated sets: better than chance on held-out non-flat moves,
deterministic for a seed, early stopping restores the best weights; windowing and
normalisation helpers; evaluation report; the train/evaluate CLI handlers end to end."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cli.ml import (
    add_evaluate_arguments,
    add_train_arguments,
    run_evaluate,
    run_train,
    trading_effect,
)
from flashmm.config import Settings
from flashmm.ml.dataset import Dataset, parse_seeds, simulate
from flashmm.ml.evaluate import EvalModel, evaluate
from flashmm.ml.schema import FeatureSchema
from flashmm.ml.train import (
    TrainResult,
    class_weights,
    fit_schema,
    gather,
    normalize,
    predict_logits,
    train,
    window_index,
)

SMALL_TF = {"d_model": 32, "layers": 1, "heads": 4, "ff": 64, "dropout": 0.0}
SEQ = 16


@pytest.fixture(scope="module")
def data() -> tuple[Dataset, Dataset, Dataset]:
    full = Dataset.concat([simulate(1, 6), simulate(2, 6)])
    tr, va = full.split(0.8)
    return tr, va, simulate(101, 6)


@pytest.fixture(scope="module")
def transformer(data: tuple[Dataset, Dataset, Dataset]) -> TrainResult:
    tr, va, _ = data
    return train(
        tr, va, "transformer", seed=0, epochs=4, batch_size=128, lr=2e-3, patience=2,
        seq_len=SEQ, model_kwargs=SMALL_TF, quiet=True,
    )  # fmt: skip


def _held_out(res: TrainResult, test: Dataset) -> dict[str, dict[str, float]]:
    from flashmm.ml.calibration import horizon_metrics

    xn = torch.from_numpy(normalize(test.x, res.schema))
    idx = torch.from_numpy(window_index(test.ts, res.seq_len))
    logits = predict_logits(res.calibrated(), xn, idx, res.seq_len)
    return horizon_metrics(logits.numpy(), test.y[idx.numpy()], res.horizons)


def test_transformer_beats_chance_on_held_out_moves(
    transformer: TrainResult, data: tuple[Dataset, Dataset, Dataset]
) -> None:
    m = _held_out(transformer, data[2])
    assert m["200ms"]["n_moved"] > 800
    assert m["200ms"]["accuracy_moved"] > 0.55
    assert all(0.05 <= t <= 20 for t in transformer.temperatures)
    assert set(transformer.metrics) == {"100ms", "200ms", "500ms"}


def test_normalisation_is_fitted_on_training_rows_only(
    transformer: TrainResult, data: tuple[Dataset, Dataset, Dataset]
) -> None:
    tr, va, _ = data
    assert np.allclose(transformer.schema.mean, tr.x.astype(np.float64).mean(axis=0))
    assert not np.allclose(transformer.schema.mean, va.x.astype(np.float64).mean(axis=0))


def test_training_is_deterministic_for_a_seed(data: tuple[Dataset, Dataset, Dataset]) -> None:
    tr, va, _ = data
    kw = {"epochs": 2, "batch_size": 128, "seq_len": SEQ, "quiet": True}
    a = train(tr, va, "mlp", seed=3, **kw)  # type: ignore[arg-type]
    b = train(tr, va, "mlp", seed=3, **kw)  # type: ignore[arg-type]
    c = train(tr, va, "mlp", seed=4, **kw)  # type: ignore[arg-type]
    sa, sb, sc = a.model.state_dict(), b.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.history == b.history and a.temperatures == b.temperatures
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_early_stopping_restores_best_weights(data: tuple[Dataset, Dataset, Dataset]) -> None:
    tr, va, _ = data
    # a wide MLP at a high learning rate on little data overfits within a few epochs
    res = train(
        tr, va, "mlp", seed=0, epochs=40, batch_size=64, lr=2e-2, patience=2, seq_len=SEQ,
        weight_decay=0.0, model_kwargs={"hidden": 256}, quiet=True,
    )  # fmt: skip
    losses = [h["val_loss"] for h in res.history]
    assert len(losses) < 40, "expected early stopping"
    assert res.best_epoch == int(np.argmin(losses)) + 1 < len(losses)
    xv = torch.from_numpy(normalize(va.x, res.schema))
    idx = torch.from_numpy(window_index(va.ts, SEQ))
    logits = predict_logits(res.model, xv, idx, SEQ)
    y = torch.from_numpy(va.y[idx.numpy()])
    val_loss = sum(
        float(torch.nn.functional.cross_entropy(logits[:, h], y[:, h])) for h in range(3)
    )
    assert val_loss == pytest.approx(losses[res.best_epoch - 1], abs=1e-4)
    assert val_loss < losses[-1] - 1e-4


def test_window_index_respects_session_boundaries() -> None:
    ts = np.array([1, 2, 3, 4, 5, 1, 2, 3, 4], dtype=np.int64)
    assert window_index(ts, 3).tolist() == [2, 3, 4, 7, 8]
    assert window_index(ts, 1).tolist() == list(range(9))
    xn = torch.arange(9 * 2, dtype=torch.float32).view(9, 2)
    w = gather(xn, torch.tensor([4, 8]), 3)
    assert torch.equal(w[0], xn[2:5]) and torch.equal(w[1], xn[6:9])


def test_fit_schema_handles_constant_features() -> None:
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(1000, 64)).astype(np.float32)
    x[:, 5] = 7.0
    s = fit_schema(x)
    assert s.std[5] == 1.0 and s.mean[5] == pytest.approx(7.0)
    z = normalize(x, s)
    assert abs(z[:, 0].mean()) < 1e-5 and abs(z[:, 0].std() - 1.0) < 1e-3
    big = normalize(np.full((1, 64), 1e9, dtype=np.float32), FeatureSchema())
    assert big.max() == 10.0


def test_evaluate_writes_report_and_figures(
    transformer: TrainResult, data: tuple[Dataset, Dataset, Dataset], tmp_path: Path
) -> None:
    models = {"transformer": EvalModel(transformer.calibrated(), transformer.schema)}
    rep = evaluate(models, data[2], SEQ, tmp_path / "rep", {"note": "x"})
    body = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert body["note"] == "x"
    assert set(body["metrics"]["transformer"]) == {"100ms", "200ms", "500ms"}
    assert set(rep.figures) == {
        "reliability_100ms",
        "reliability_200ms",
        "reliability_500ms",
        "accuracy_by_horizon",
    }
    assert all(p.stat().st_size > 1000 for p in rep.figures.values())
    assert rep.metrics["transformer"]["200ms"] == pytest.approx(
        _held_out(transformer, data[2])["200ms"], nan_ok=True, abs=1e-5
    )


def test_trading_effect_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The evaluate command asks the hot path's signal evaluation; its failure is reported."""
    from hotpath import signal_eval

    calls: list[tuple[str, list[int], float]] = []

    def effect(p: str, s: list[int], m: float) -> dict[str, float]:
        calls.append((p, s, m))
        return {"pnl_on": 1.0}

    monkeypatch.setattr(signal_eval, "trading_effect", effect)
    assert trading_effect(tmp_path, [5], 2.0) == {"pnl_on": 1.0}
    assert calls == [(str(tmp_path), [5], 2.0)]

    def broken(p: str, s: list[int], m: float) -> dict[str, float]:
        raise ZeroDivisionError

    monkeypatch.setattr(signal_eval, "trading_effect", broken)
    out = trading_effect(tmp_path, [5], 2.0)
    assert out["skipped"] is True and "ZeroDivisionError" in out["note"]


def test_class_weights_and_progress_line() -> None:
    import io

    from flashmm.ml.progress import Progress

    y = np.array([[0, 1], [1, 1], [1, 1], [2, 1]])
    w = class_weights(y)
    assert torch.allclose(w[0], torch.tensor([4 / 3, 2 / 3, 4 / 3]))
    assert torch.allclose(w[1], torch.tensor([0.0, 1 / 3, 0.0]))  # absent classes weigh 0
    out = io.StringIO()
    bar = Progress(3, "epoch 1/1", stream=out)
    for _ in range(3):
        bar.update(1, loss=0.5)
    bar.close(loss=0.5, val_loss=0.25)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and "3/3" in lines[0] and "val_loss=0.2500" in lines[0]
    quiet = io.StringIO()
    Progress(3, "x", quiet=True, stream=quiet).close()
    assert quiet.getvalue() == ""


def test_parse_seeds() -> None:
    assert parse_seeds("1-8") == list(range(1, 9))
    assert parse_seeds("3, 1,5-6") == [1, 3, 5, 6]
    for bad in ("a", "5-2", "1-"):
        with pytest.raises(ValueError):
            parse_seeds(bad)


def test_cli_train_then_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    add_train_arguments(sub.add_parser("train"))
    add_evaluate_arguments(sub.add_parser("evaluate"))
    settings = Settings()
    model_dir = tmp_path / "model"
    args = p.parse_args(
        ["train", "--kind", "logistic", "--seeds", "1-2", "--minutes", "2", "--epochs", "2",
         "--seq-len", "8", "--out", str(model_dir), "--quiet"]
    )  # fmt: skip
    assert run_train(settings, args) == 0
    card = json.loads((model_dir / "card.json").read_text())
    assert card["data_range"]["seeds"] == [1, 2] and card["seq_len"] == 8
    assert "logistic" in capsys.readouterr().out
    args = p.parse_args(
        ["evaluate", "--model", str(model_dir), "--seeds", "9", "--minutes", "2",
         "--baseline-epochs", "1", "--out", str(tmp_path / "rep"), "--quiet", "--no-trading"]
    )  # fmt: skip
    assert run_evaluate(settings, args) == 0
    body = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert set(body["metrics"]) == {"logistic", "mlp"}
    assert body["notes"] == [] and body["test"]["seeds"] == [9]
    bad = p.parse_args(["evaluate", "--model", str(model_dir), "--seeds", "2", "--quiet"])
    with pytest.raises(ValueError, match="used for training"):
        run_evaluate(settings, bad)


def test_cli_train_on_simulator_data_honours_the_transformer_sizes(tmp_path: Path) -> None:
    """``--d-model/--layers/--heads/--ff`` shape the transformer on simulator data too (they
    were once read only with ``--data``); options that only mean something on real data are
    refused there, never silently ignored."""
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    add_train_arguments(sub.add_parser("train"))
    out = tmp_path / "small"
    args = p.parse_args(
        ["train", "--kind", "transformer", "--seeds", "1", "--minutes", "1", "--epochs", "1",
         "--seq-len", "4", "--d-model", "16", "--layers", "1", "--heads", "2", "--ff", "32",
         "--out", str(out), "--quiet"]
    )  # fmt: skip
    assert run_train(Settings(), args) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["train_config"]["model_kwargs"] == {
        "d_model": 16,
        "layers": 1,
        "heads": 2,
        "ff": 32,
    }
    for extra, match in (
        (["--kind", "mlp", "--layers", "1"], "transformer sizes"),
        (["--kind", "mlp", "--residual"], "only with --data"),
        (["--kind", "mlp", "--inputs", "all"], "only with --data"),
    ):
        bad = p.parse_args(["train", "--seeds", "1", "--out", str(tmp_path / "x"), *extra])
        with pytest.raises(ValueError, match=match):
            run_train(Settings(), bad)
    assert not (tmp_path / "x").exists()
