"""Learned models: ONNX scores equal scikit-learn's, shipped cards match their models, bad files are refused."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import models.artifacts
from brain.anomaly import ModelError, available_models, load_model, load_models
from citybrain.cli import main as cli_main
from models.simhistory import SEGMENT_FEATURES, segment_windows
from models.train import DISTRICT_FEATURES, district_vectors, fit_and_export

SHIPPED = models.artifacts.DIR


@pytest.fixture(scope="module")
def shipped():
    """The shipped models, loaded once (creating an onnxruntime session takes seconds)."""
    loaded, errors = load_models(available_models(SHIPPED), SHIPPED)
    assert not errors
    return loaded


def test_onnx_scores_equal_scikit_learn(tmp_path):
    X, _ = segment_windows(1.0, 6, seed=3)
    X_eval, y_eval = segment_windows(2.0, 4, seed=4, anomaly_fraction=1.0)
    card, model = fit_and_export("tiny_iforest", SEGMENT_FEATURES, X, X_eval, y_eval, tmp_path, seed=5, n_estimators=8, data_desc={})
    onnx_model = load_model("tiny_iforest", "1", tmp_path)
    fresh, _ = segment_windows(1.0, 3, seed=99, anomaly_fraction=1.0)  # rows neither fitted nor in the card
    np.testing.assert_allclose(onnx_model.score(fresh), -model.score_samples(fresh), atol=1e-5)
    assert card["metrics"]["onnx_max_abs_diff_vs_sklearn"] < 1e-5


@pytest.mark.parametrize(
    "name,features,regenerate",
    [
        ("segment_iforest", SEGMENT_FEATURES, lambda d: segment_windows(d["days"], d["segments"], seed=d["seed"])[0]),
        ("district_iforest", DISTRICT_FEATURES, lambda d: district_vectors(d["days"], d["districts"], seed=d["seed"] + 2)[0]),
    ],
)
def test_shipped_model_card_matches_its_model(shipped, name, features, regenerate):
    assert (name, "1") in available_models(SHIPPED)
    model = shipped[name]  # load_model checked the file hash and re-scored the card's check rows
    card = model.card
    assert model.version == "1" and model.features == tuple(features)
    assert (SHIPPED / card["onnx_file"]).stat().st_size == card["onnx_bytes"] < 1_000_000
    # the recorded training-data hash is the hash of the data the card says it was trained on
    data = card["training_data"]
    X = regenerate(data)
    import hashlib

    assert X.shape[0] == data["rows"]
    assert hashlib.sha256(np.ascontiguousarray(X).tobytes()).hexdigest() == data["sha256"]
    # scores live in (0, 1], and training windows rarely pass the threshold (99.5th percentile)
    s = model.score(X[:2000])
    assert ((s > 0) & (s <= 1)).all()
    assert np.mean(s >= model.threshold) < 0.03
    assert (SHIPPED / f"{name}-1.md").read_text(encoding="utf-8").startswith(f"# Model card: {name} v1")


def test_segment_model_flags_accidents_more_than_clean_windows(shipped):
    model = shipped["segment_iforest"]
    X, y = segment_windows(2.0, 6, seed=12345, anomaly_fraction=1.0)
    s = model.score(X)
    assert y.any() and s[y].mean() > s[~y].mean() + 0.05
    assert model.flags(X)[y].mean() > 0.3


def test_missing_and_mismatched_models_are_refused(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_model("segment_iforest", "7", SHIPPED)
    for f in ("segment_iforest-1.onnx", "segment_iforest-1.json"):
        shutil.copy(SHIPPED / f, tmp_path / f)
    blob = bytearray((tmp_path / "segment_iforest-1.onnx").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (tmp_path / "segment_iforest-1.onnx").write_bytes(bytes(blob))
    with pytest.raises(ModelError, match="does not match its model card"):
        load_model("segment_iforest", "1", tmp_path)
    card = json.loads((SHIPPED / "segment_iforest-1.json").read_text())
    card["features"] = card["features"][:-1]
    shutil.copy(SHIPPED / "segment_iforest-1.onnx", tmp_path / "segment_iforest-1.onnx")
    (tmp_path / "segment_iforest-1.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="takes 6 features but its card lists 5"):
        load_model("segment_iforest", "1", tmp_path)
    with pytest.raises(ModelError, match="bad model version"):
        load_model("segment_iforest", "latest", SHIPPED)


def test_load_models_reports_errors_and_keeps_the_rest(shipped, tmp_path):
    for f in ("district_iforest-1.onnx", "district_iforest-1.json"):
        shutil.copy(SHIPPED / f, tmp_path / f)
    models_, errors = load_models([("district_iforest", "1"), ("no_such_model", None)], tmp_path)
    assert list(models_) == ["district_iforest"]
    assert len(errors) == 1 and "no_such_model" in errors[0]
    models_ = shipped
    with pytest.raises(ModelError, match="6 columns"):
        models_["segment_iforest"].score(np.zeros((3, 5)))
    s = models_["segment_iforest"].score(np.array([[np.nan] * 6, [10, 5, 50, 2, 1, 3]]))
    assert np.isnan(s[0]) and np.isfinite(s[1])


def test_cli_train_list_check(tmp_path, capsys):
    out = tmp_path / "m"
    assert cli_main(["models", "train", "--out", str(out), "--seed", "2", "--days", "1", "--units", "4", "--trees", "3", "--no-progress"]) == 0
    assert sorted(p.name for p in out.glob("*.onnx")) == ["district_iforest-1.onnx", "segment_iforest-1.onnx"]
    assert cli_main(["models", "check", "--dir", str(out)]) == 0
    assert cli_main(["models", "list", "--dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ok      segment_iforest v1" in printed and "segment_iforest v1  features: volume_mean" in printed
    (out / "district_iforest-1.onnx").write_bytes(b"garbage")
    assert cli_main(["models", "check", "--dir", str(out)]) == 1
    assert cli_main(["models", "train", "--out", str(out), "--days", "0"]) == 2
    assert "--days must be positive" in capsys.readouterr().err


def test_cli_train_from_the_city_simulator(tmp_path):
    pytest.importorskip("streams.sim")
    out = tmp_path / "city"
    assert cli_main(["models", "train", "--source", "city", "--out", str(out), "--days", "0.5", "--units", "4",
                     "--trees", "3", "--no-progress"]) == 0
    card = json.loads((out / "segment_iforest-1.json").read_text())
    assert card["training_data"]["generator"].startswith("streams.sim.Simulator")
    assert card["metrics"]["eval_anomalous_windows"] > 0  # the evaluation run had accidents
    assert load_model("segment_iforest", "1", out).features == tuple(SEGMENT_FEATURES)
    assert cli_main(["models", "train", "--source", "city", "--city", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
