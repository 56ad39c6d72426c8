"""Direction models, calibration and artifacts: shapes and TorchScript of every model, the
imbalance baseline's inputs, temperature scaling, ECE on a hand-made case, export/load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from flashmm.ml import export as export_mod
from flashmm.ml.calibration import (
    expected_calibration_error,
    f1_macro,
    fit_temperature,
    horizon_metrics,
    nll,
    reliability,
)
from flashmm.ml.export import ArtifactError, export, load
from flashmm.ml.models import (
    IMBALANCE_FEATURES,
    KINDS,
    ImbalanceLogistic,
    MarketTransformer,
    Temperature,
    build,
    load_script,
    optimize,
    script,
)
from flashmm.ml.schema import FEATURE_NAMES, FeatureSchema, SchemaMismatchError
from flashmm.ml.train import TrainResult, fit_schema

SMALL_TF = {"d_model": 32, "layers": 2, "heads": 4, "ff": 64}


@pytest.mark.parametrize("kind", KINDS)
def test_shape_and_torchscript_parity(kind: str) -> None:
    torch.manual_seed(0)
    model = build(kind).eval()
    x = torch.randn(5, 32, 64)
    with torch.no_grad():
        ref = model(x)
        scripted = script(model)
        got = scripted(x)
        opt = optimize(script(model))(x)
    assert ref.shape == (5, 3, 3)
    assert torch.allclose(ref, got, atol=1e-5)
    assert torch.allclose(ref, opt, atol=1e-5)


def test_transformer_defaults_and_short_history() -> None:
    m = MarketTransformer().eval()
    assert m.seq_len == 32 and len(m.heads) == 3
    assert len(m.encoder.layers) == 4
    with torch.no_grad():
        assert script(m)(torch.randn(2, 8, 64)).shape == (2, 3, 3)


def test_logistic_reads_only_imbalance_features() -> None:
    torch.manual_seed(1)
    m = ImbalanceLogistic().eval()
    imb = [FEATURE_NAMES.index(n) for n in IMBALANCE_FEATURES]
    x = torch.randn(16, 32, 64)
    # everything but the newest step's imbalance features replaced (older steps included)
    perturbed = torch.randn(16, 32, 64) * 5
    perturbed[:, -1, imb] = x[:, -1, imb]
    with torch.no_grad():
        assert torch.equal(m(x), m(perturbed))
        x2 = x.clone()
        x2[:, -1, FEATURE_NAMES.index("imb_3")] += 1.0
        assert not torch.allclose(m(x), m(x2))


def test_temperature_wrapper_divides_logits_per_horizon() -> None:
    base = build("mlp").eval()
    t = torch.tensor([0.5, 1.0, 4.0])
    wrapped = script(Temperature(base, t))
    x = torch.randn(3, 32, 64)
    with torch.no_grad():
        assert torch.allclose(wrapped(x), base(x) / t.view(1, 3, 1), atol=1e-6)


def test_temperature_scaling_lowers_nll_of_overconfident_model() -> None:
    g = torch.Generator().manual_seed(0)
    n = 4000
    labels = torch.randint(0, 3, (n, 2), generator=g)
    # logits point at the true class only 60% of the time, but with great confidence
    signal = torch.nn.functional.one_hot(labels, 3).float()
    wrong = torch.nn.functional.one_hot(torch.randint(0, 3, (n, 2), generator=g), 3).float()
    hit = (torch.rand(n, 2, 1, generator=g) < 0.6).float()
    logits = 8.0 * (hit * signal + (1 - hit) * wrong)
    temps = fit_temperature(logits, labels)
    assert (temps > 2.0).all()
    before, after = nll(logits, labels), nll(logits / temps.view(1, -1, 1), labels)
    assert all(a < b - 0.5 for a, b in zip(after, before, strict=True))
    # argmax (and so accuracy) is unchanged by a temperature
    assert torch.equal(logits.argmax(-1), (logits / temps.view(1, -1, 1)).argmax(-1))


def test_ece_on_hand_made_example() -> None:
    # bin of 0.9 (4 samples, 3 right): |0.75-0.9| ; bin of 0.5 (2 samples, 2 right): |1-0.5|
    probs = np.array(
        [[0.9, 0.05, 0.05]] * 4 + [[0.5, 0.3, 0.2]] * 2,
    )
    labels = np.array([0, 0, 0, 1, 0, 0])
    expected = 4 / 6 * abs(0.75 - 0.9) + 2 / 6 * abs(1.0 - 0.5)
    assert expected_calibration_error(probs, labels) == pytest.approx(expected)
    r = reliability(probs, labels)
    assert sum(r["count"]) == 6 and r["count"][13] == 4 and r["count"][7] == 2
    perfect = np.array([[1.0, 0.0, 0.0]] * 3)
    assert expected_calibration_error(perfect, np.zeros(3, dtype=np.int64)) == 0.0


def test_f1_macro_and_moved_accuracy() -> None:
    y = np.array([0, 0, 1, 2, 2, 2])
    pred = np.array([0, 1, 1, 2, 2, 0])
    f1 = [2 * 1 / (2 + 1 + 1), 2 * 1 / (2 + 1 + 0), 2 * 2 / (4 + 0 + 1)]
    assert f1_macro(pred, y) == pytest.approx(np.mean(f1))
    # FLAT preferred everywhere, but UP > DOWN on the two UP samples: direction calls 2/3 right
    logits = np.log(np.array([[0.2, 0.7, 0.1], [0.1, 0.6, 0.3], [0.1, 0.5, 0.4]]))[:, None]
    m = horizon_metrics(logits, np.array([[0], [2], [2]]), ["200ms"])["200ms"]
    assert m["accuracy_moved"] == pytest.approx(1.0)
    assert m["accuracy_moved_3class"] == 0.0 and m["n_moved"] == 3


def _result(kind: str = "transformer") -> TrainResult:
    torch.manual_seed(0)
    kw = SMALL_TF if kind == "transformer" else {}
    model = build(kind, **kw).eval()
    schema = fit_schema(np.random.default_rng(0).normal(size=(500, 64)).astype(np.float32))
    return TrainResult(
        kind=kind,
        model=model,
        schema=schema,
        seq_len=32,
        horizons_s=(0.1, 0.2, 0.5),
        temperatures=[1.2, 1.0, 0.8],
        metrics={"200ms": {"accuracy": 0.5}},
        history=[{"epoch": 1, "train_loss": 3.0, "val_loss": 3.1}],
        best_epoch=1,
        config={"seed": 0, "epochs": 1},
        check_x=torch.randn(16, 32, 64),
    )


def test_export_load_round_trip(tmp_path: Path) -> None:
    res = _result()
    out = export(res, tmp_path / "m", {"source": "sim", "seeds": [1]}, latency_runs=50)
    card = json.loads((out / "card.json").read_text())
    assert card["kind"] == "transformer" and card["version"].startswith("transformer-")
    assert card["feature_schema"]["hash"] == res.schema.layout_hash
    assert card["feature_schema"]["mean"] == list(res.schema.mean)
    assert card["latency"]["p50_us"] > 0 and card["latency"]["p99_us"] >= card["latency"]["p50_us"]
    assert card["parity"]["max_abs_diff"] <= 1e-5
    for opt in (True, False):
        loaded = load(out, optimized=opt)
        assert loaded.schema == res.schema and loaded.seq_len == 32
        x = torch.randn(4, 32, 64)
        with torch.no_grad():
            assert torch.allclose(loaded(x), res.calibrated()(x), atol=1e-5)
    # the saved file is portable: not frozen, weights are parameters and it can be moved
    raw = load_script(str(out / "model.ts"))
    assert len(raw.state_dict()) > 0
    raw.to(torch.float64)


def test_export_refuses_when_torchscript_differs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_mod, "max_abs_diff", lambda a, b, x: 1e-3)
    with pytest.raises(ArtifactError, match="differs"):
        export(_result("mlp"), tmp_path / "m", {}, latency_runs=10)
    assert not (tmp_path / "m" / "card.json").exists()


def _edit_card(path: Path, edit: dict[str, object]) -> None:
    card = json.loads((path / "card.json").read_text())
    card["feature_schema"].update(edit)
    (path / "card.json").write_text(json.dumps(card))


def test_load_refuses_schema_mismatch(tmp_path: Path) -> None:
    res = _result("logistic")
    out = export(res, tmp_path / "m", {}, latency_runs=10)
    names = list(FEATURE_NAMES)
    names[0], names[1] = names[1], names[0]
    cases: dict[str, dict[str, object]] = {
        "hash": {"hash": "0" * 16},
        "reordered": {"names": names},
        "reordered, rehashed": {"names": names, "hash": FeatureSchema(tuple(names)).layout_hash},
        "other version": {"version": 2, "hash": FeatureSchema(version=2).layout_hash},
    }
    for edit in cases.values():
        _edit_card(out, {**res.schema.to_json(), **edit})
        with pytest.raises(SchemaMismatchError):
            load(out)
    _edit_card(out, res.schema.to_json())
    load(out)  # restored card loads again


def test_load_refuses_damaged_model_file(tmp_path: Path) -> None:
    out = export(_result("mlp"), tmp_path / "m", {}, latency_runs=10)
    with (out / "model.ts").open("ab") as f:
        f.write(b"x")
    with pytest.raises(ArtifactError, match="checksum"):
        load(out)
    with pytest.raises(ArtifactError, match="not a model artifact"):
        load(tmp_path / "nothing")
