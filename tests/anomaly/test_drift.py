"""A drifting traffic detector is explained as drift; a step, or the city itself changing, is not.

The readings come from the city simulator (streams.sim: its ``sensor_drift`` fault and ``accident``
scenario, with their ground truth) on the toy city, through the real pipeline and the anomaly
operator, and are judged the way rules/anomaly.yaml's ``sensor_fault_suspected`` judges them:
reason drift (or flatline) at the rule's threshold, held for the rule's ``for``.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from brain.alerts.model import parse_duration_ms
from brain.anomaly import BatchDetector, DetectorPeers, SeasonalDetector
from brain.pipeline import CityPipeline, PipelineConfig
from streams.anomaly_operator import AnomalyOperator
from streams.sim import Simulator
from streams.sim.scenarios import Scenario
from streams.sim.toycity import toy_city

H = 3_600_000
HOURS = 11
DRIFT_AT_H, DRIFT_H = 5, 4
EVENT_AT_H = 6
RULES = Path(__file__).resolve().parents[2] / "rules" / "anomaly.yaml"


def _fault_rule() -> tuple[float, int]:
    rule = next(r for r in yaml.safe_load(RULES.read_text())["rules"] if r["id"] == "sensor_fault_suspected")
    return float(rule["threshold"]), parse_duration_ms(rule["for"])


def _fault_value() -> str:
    """The column the fault rule compares with its threshold (a held condition: ``ongoing``)."""
    rule = next(r for r in yaml.safe_load(RULES.read_text())["rules"] if r["id"] == "sensor_fault_suspected")
    return rule.get("value", "score")


@pytest.fixture(scope="module")
def scored():
    """Detector rows of the anomaly stream for 11 h of the toy city: LP-A3 drifting (the simulator's
    fault), LP-X1 drifting the other way, LP-A4 stepping to 60 % (a recalibration), an accident on A2."""
    city = toy_city()
    start = Simulator(city, seed=3, scenarios=[], faults=[]).start_ms
    t0, t_event = start + DRIFT_AT_H * H, start + EVENT_AT_H * H
    sim = Simulator(city, seed=3, scenarios=[Scenario(type="accident", start_ms=t_event, duration_s=3600, target="A2")],
                    faults=[Scenario(type="sensor_drift", start_ms=t0, duration_s=DRIFT_H * 3600, target="LP-A3")])
    frames = sim.run(HOURS)
    sign = sim.engine.faults[0].drift_sign
    elapsed = (pl.col("ts_ms") - t0) / (DRIFT_H * H)
    in_drift = (pl.col("ts_ms") >= t0) & (pl.col("ts_ms") < t0 + DRIFT_H * H)
    speed = pl.col("speed_kmh")
    frames["traffic"] = frames["traffic"].with_columns(
        pl.when((pl.col("sensor_id") == "LP-X1") & in_drift).then(speed * (1.0 - sign * 0.5 * elapsed))  # the opposite sign
        .when((pl.col("sensor_id") == "LP-A4") & (pl.col("ts_ms") >= t_event)).then(speed * 0.6)
        .otherwise(speed).round(1).alias("speed_kmh"))
    pipe = CityPipeline(city, PipelineConfig(window_s=300), window_operators=[AnomalyOperator(city=city)])
    windows = pipe.ingest_frames(frames).windows + pipe.advance_to(start + HOURS * H).windows
    rows = pl.concat([w.vitals["anomaly"] for w in windows]).filter(pl.col("metric") == "detector_speed_kmh")
    return rows.sort("key", "window_end_ms"), t0, t_event, sim.ground_truth


def _fault_runs(rows: pl.DataFrame, key: str) -> list[tuple[int, int, int]]:
    """(first window end, last window end, windows) of each run that the fault rule's condition holds."""
    threshold, _ = _fault_rule()
    r = rows.filter(pl.col("key") == key)
    hit = (r[_fault_value()] >= threshold) & r["reason"].is_in(["flatline", "drift"])
    ts = r["window_end_ms"].to_list()
    runs, start = [], None
    for i, h in enumerate(hit.to_list() + [False]):
        if h and start is None:
            start = i
        elif not h and start is not None:
            runs.append((ts[start], ts[i - 1], i - start))
            start = None
    return runs


def _held(rows, key) -> list[tuple[int, int, int]]:
    """Runs long enough for the rule to fire (its ``for``, counted in 5-minute windows)."""
    _, for_ms = _fault_rule()
    return [r for r in _fault_runs(rows, key) if r[1] - r[0] >= for_ms]


@pytest.mark.parametrize("key", ["LP-A3", "LP-X1"])
def test_simulated_drift_is_explained_as_drift(scored, key):
    rows, t0, _, truth = scored
    if key == "LP-A3":
        assert truth.filter(pl.col("type") == "sensor_drift")["sensor_ids"].to_list() == [["LP-A3"]]
    held = _held(rows, key)
    assert held, f"{key}: no drift held for the fault rule's duration"
    first = held[0][0]
    assert t0 < first <= t0 + DRIFT_H * H  # found while it drifts, not before
    window = rows.filter((pl.col("key") == key) & (pl.col("window_end_ms") >= first) & (pl.col("window_end_ms") <= held[0][1]))
    assert set(window["reason"].to_list()) == {"drift"}


def test_simulated_step_is_a_jump_not_drift(scored):
    rows, _, t_event, _ = scored
    first_hour = rows.filter((pl.col("key") == "LP-A4") & pl.col("window_end_ms").is_between(t_event + 1, t_event + H))
    flagged = set(first_hour.filter(pl.col("score") >= 0.999)["reason"].to_list())
    assert flagged and flagged <= {"spike", "level_shift"}  # reported as the jump it is...
    assert not _held(rows, "LP-A4")  # ...and never held as drift


def test_the_city_changing_is_not_drift(scored):
    """An accident moves the detectors and their probes together; nothing else drifts either."""
    rows, _, t_event, truth = scored
    accident = truth.filter(pl.col("type") == "accident").row(0, named=True)
    on_accident = [k for k in accident["sensor_ids"] if k in set(rows["key"].to_list())]
    assert on_accident
    for key in on_accident:
        near = rows.filter((pl.col("key") == key) & (pl.col("window_end_ms") > t_event))
        assert not (near.filter(pl.col("score") >= 0.999)["reason"] == "drift").any(), key
    for key in set(rows["key"].to_list()) - {"LP-A3", "LP-X1", "LP-A4"}:
        assert not _held(rows, key), key


def test_peers_are_the_segments_probe():
    city = toy_city()
    peers = DetectorPeers(city)
    det = pl.DataFrame({"sensor_id": ["LP-A3", "VD-A3", "LP-A1", "NOPE"], "window_end_ms": [600_000] * 4,
                        "speed_kmh": [40.0, 44.0, 50.0, 1.0]})
    probe = pl.DataFrame({"segment_id": ["A3", "A3"], "window_end_ms": [600_000, 300_000], "travel_time_s": [90.0, 45.0]})
    out = peers.with_peer(det, probe)
    length_m = next(s.length_m for s in city.segments if s.id == "A3")
    assert out["sensor_id"].to_list() == det["sensor_id"].to_list()
    assert out["peer_speed_kmh"].to_list()[:2] == [3.6 * length_m / 90.0] * 2
    assert out["peer_speed_kmh"].to_list()[2:] == [None, None]  # no probe this window / unknown sensor
    with pytest.raises(ValueError, match="speed_kmh"):
        peers.with_peer(det.drop("speed_kmh"), probe)


def test_without_probes_the_other_detectors_are_the_peer():
    city = toy_city()
    city.sensors = [s for s in city.sensors if s.type != "probe"]
    peers = DetectorPeers(city)
    assert peers.kind == {"LP-X1": "detectors", "RD-X1": "detectors", "LP-A3": "detectors", "VD-A3": "detectors"}
    det = pl.DataFrame({"sensor_id": ["LP-X1", "RD-X1", "LP-A1"], "window_end_ms": [0, 0, 0], "speed_kmh": [80.0, 70.0, 50.0]})
    assert peers.with_peer(det, None)["peer_speed_kmh"].to_list() == [70.0, 80.0, None]


def test_peer_input_is_checked():
    det = BatchDetector(1)
    with pytest.raises(ValueError, match="peers must be aligned"):
        det.score_learn_many(np.zeros(3, dtype=np.int64), np.arange(3), np.ones(3), peers=np.ones(2))


def _speed_pair(n=600, seed=0):
    """A detector and its probe peer over ~2 days of 5-minute windows; the detector drifts at the end."""
    rng = np.random.default_rng(seed)
    ts = 1_780_243_200_000 + np.arange(n, dtype=np.int64) * 300_000
    city_kmh = 45 + 15 * np.sin(np.arange(n) * 2 * np.pi / 288)
    det = city_kmh * np.exp(rng.normal(0, 0.02, n)) * np.r_[np.ones(n - 60), np.linspace(1.0, 0.5, 60)]
    peer = city_kmh * np.exp(rng.normal(0, 0.08, n))
    peer[::7] = np.nan
    return ts, det, peer


def test_one_series_and_batch_agree_with_peers():
    ts, det, peer = _speed_pair()
    batch = BatchDetector(1).explain_learn_many(np.zeros(ts.size, dtype=np.int64), ts, det, peers=peer)
    one = SeasonalDetector()
    scores, reasons = [], []
    for t, x, p in zip(ts.tolist(), det.tolist(), peer.tolist()):
        scores.append(one.score_learn_one(t / 1000.0, x, None if np.isnan(p) else p))
        reasons.append(one.last_reason)
    np.testing.assert_array_equal(batch["score"], scores)
    assert reasons == batch["reason"].tolist()
    assert "drift" in reasons[-60:]


def test_snapshot_keeps_the_peer_state_and_reads_old_snapshots():
    ts, det, peer = _speed_pair(seed=1)
    keys = np.zeros(ts.size, dtype=np.int64)
    half = ts.size - 40
    whole = BatchDetector(1).score_learn_many(keys, ts, det, peers=peer)
    first = BatchDetector(1)
    first.score_learn_many(keys[:half], ts[:half], det[:half], peers=peer[:half])
    resumed = BatchDetector.from_snapshot(first.snapshot())
    np.testing.assert_array_equal(resumed.score_learn_many(keys[half:], ts[half:], det[half:], peers=peer[half:]), whole[half:])
    # a snapshot written before peer drift existed (no PD array) restores with fresh peer state
    buf = io.BytesIO()
    buf.write(b"CBAD1\n")
    np.savez(buf, S=first._S, SEA=first._SEA)
    old = BatchDetector.from_snapshot(buf.getvalue())
    assert old.n_keys == first.n_keys and not old._PD.any()
