"""Learned ONNX models at run time: loaded by name and version, scored hourly, failures not fatal."""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import polars as pl

import models.artifacts
from brain.anomaly import load_model
from brain.city import demo_city_path, load_city
from brain.pipeline import CityPipeline
from streams.anomaly_operator import ModelOperator, district_features
from streams.sim import Simulator


def test_hourly_district_scores_equal_the_model_on_the_built_features():
    city = load_city(demo_city_path())
    op = ModelOperator(city, [("district_iforest", "1")])
    assert op.errors == [] and set(op.models) == {"district_iforest"}
    seen = []

    def spy(batch):
        out = op(batch)
        seen.append((district_features(batch, city.timezone), out["model_scores"]))
        return out

    pipe = CityPipeline(city, window_operators=[spy])
    sim = Simulator(city, seed=5)
    for b in sim.batches(sim.start_ms + 3 * 3_600_000, batch_s=1800):
        pipe.ingest_frames(b.frames)
    feats = pl.concat([f for f, _ in seen if f.height])
    scores = pl.concat([s for _, s in seen if s.height])
    assert scores.height == feats.height == 2 * len(city.districts)  # the 01:00 and 02:00 hours closed
    model = load_model("district_iforest", "1", models.artifacts.DIR)
    X = feats.select(model.features).fill_null(strategy="mean").fill_null(0.0).to_numpy().astype("float32")
    np.testing.assert_allclose(scores["score"].to_numpy(), model.score(X), rtol=1e-6)
    assert ((scores["score"] > 0) & (scores["score"] <= 1)).all()


def test_missing_or_altered_models_are_reported_and_skipped(tmp_path):
    city = load_city(demo_city_path())
    for f in models.artifacts.DIR.glob("district_iforest-1.*"):
        shutil.copy(f, tmp_path / f.name)
    onnx = tmp_path / "district_iforest-1.onnx"
    blob = bytearray(onnx.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    onnx.write_bytes(bytes(blob))
    op = ModelOperator(city, [("district_iforest", "1"), ("nosuch", None)], tmp_path)
    assert op.models == {}
    assert len(op.errors) == 2 and any("district_iforest" in e for e in op.errors) and any("nosuch" in e for e in op.errors)


def test_run_keeps_going_without_a_missing_model(tmp_path):
    p = subprocess.run([sys.executable, "-m", "citybrain", "run", "--headless", "--speed", "0", "--duration", "1h",
                        "--no-alerts", "--out", str(tmp_path), "--models", "nosuch:3"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "warning: model nosuch" in p.stderr and "Traceback" not in p.stderr
