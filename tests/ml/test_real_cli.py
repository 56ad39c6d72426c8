"""``flashmm train --data`` and ``flashmm evaluate --data --json`` end to end on imported
recordings (tiny, few-epoch models): the card names the data and the splits, the evaluation
holds out the later tail of a training recording and all of an unseen instrument, and the
exported model runs in the hot path's ``ModelSignal``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cli.main import main

KEYS = {"accuracy", "accuracy_moved", "f1_macro", "nll", "ece", "n", "n_moved"}


@pytest.fixture(scope="module")
def trained(real_store: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "mlp"
    stores = [str(real_store("btc-usdm-2023")), str(real_store("btc-usdm-2024"))]
    rc = main(
        ["train", "--data", *stores, "--kind", "mlp", "--epochs", "4", "--seq-len", "4",
         "--threads", "1", "--quiet", "--out", str(out)]
    )  # fmt: skip
    assert rc == 0
    return out


def test_card_names_the_recordings_and_the_splits(trained: Path) -> None:
    card = json.loads((trained / "card.json").read_text())
    dr = card["data_range"]
    assert dr["source"] == "real" and dr["sample_ms"] == 100 and dr["feed_latency"] == "recorded"
    assert dr["phases"] == 1
    assert [s["symbol"] for s in dr["stores"]] == ["BTCUSDT", "BTCUSDT"]
    assert dr["stores"][1]["files"] == ["btcusdt_20240718.gz", "btcusdt_20240719.gz"]
    assert dr["splits"] == {"val_frac": 0.15, "test_frac": 0.25, "gap_s": 10.0}
    for r in dr["split_ranges"]:
        assert r["train"]["to_utc"] < r["val"]["from_utc"] < r["val"]["to_utc"]
        assert r["val"]["to_utc"] < r["test"]["from_utc"]
    assert card["train_config"]["model_kwargs"]["wide"] == ["imb_1", "imb_3", "imb_5"]
    assert "depth_total" not in card["train_config"]["model_kwargs"]["inputs"]


def test_evaluate_json_scores_every_model_on_later_and_unseen_data(
    trained: Path,
    real_store: Callable[[str], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    btc, eth = real_store("btc-usdm-2024"), real_store("eth-usdm-2024")
    rc = main(
        ["evaluate", "--model", str(trained), "--data", str(btc), str(eth), "--kinds",
         "logistic", "--json", "--quiet", "--threads", "1", "--out", str(tmp_path / "ev")]
    )  # fmt: skip
    assert rc == 0
    body = json.loads(capsys.readouterr().out)
    sets = body["sets"]
    assert sets[btc.name]["role"] == "later-time tail of a training recording"
    assert sets[eth.name]["role"] == "not trained on" and sets[eth.name]["symbol"] == "ETHUSDT"
    assert sets[eth.name]["rows"] > 2 * sets[btc.name]["rows"]  # all 8 min vs the tail
    for s in sets.values():
        assert set(s["metrics"]) == {"mlp", "logistic", "no-change"}
        for model in s["metrics"].values():
            assert set(model) == {"100ms", "200ms", "500ms"}
            for m in model.values():
                assert set(m) == KEYS and 0 < m["n_moved"] < m["n"]
        nc, lg = s["metrics"]["no-change"], s["metrics"]["logistic"]
        for h in ("100ms", "200ms", "500ms"):
            assert lg[h]["nll"] < nc[h]["nll"]  # imbalance carries information out of sample
            assert nc[h]["accuracy"] == pytest.approx(1 - nc[h]["n_moved"] / nc[h]["n"])
        assert set(s["versus_imbalance"]["checks"]) >= {"nll_100ms", "accuracy_moved_200ms"}
    assert (tmp_path / "ev" / eth.name / "report.json").is_file()


def test_the_exported_model_runs_in_the_hot_path_signal(trained: Path) -> None:
    from hotpath.inference import ModelSignal, load_model

    sig = ModelSignal(load_model(str(trained)))
    feats = [0.0] * 64
    for i in range(4):
        direction, confidence = sig.predict(feats, i * 100_000_000, 1000.0)
    assert sig.fallback_cycles == 3  # until a full window of seq_len rows
    assert -1.0 <= direction <= 1.0 and 0.0 <= confidence <= 1.0
