"""Determinism, JSONL encoding, bad-input injection and replay round trips."""
from __future__ import annotations

import datetime as dt
import json
import pickle
import subprocess
import sys
from zoneinfo import ZoneInfo

import msgspec
import polars as pl
import pytest

from brain.schemas import PHYSICAL_RANGE, Record
from streams.sim import CORRUPTIONS, Simulator, corrupt, to_jsonl
from streams.sources.replay import ReplayError, ReplaySource

HOUR_MS = 3_600_000


def _jsonl(sim, hours, batch_s=None):
    return b"".join(to_jsonl(b.frames) for b in sim.batches(sim.start_ms + int(hours * HOUR_MS), batch_s=batch_s))


def test_same_seed_same_bytes_different_seed_differs(toy):
    a = _jsonl(Simulator(toy, seed=7), 6, batch_s=3600)
    b = _jsonl(Simulator(toy, seed=7), 6, batch_s=3600)
    c = _jsonl(Simulator(toy, seed=8), 6, batch_s=3600)
    assert a == b and len(a) > 100_000
    assert a != c


@pytest.mark.parametrize("readahead_s", [0, 900])
def test_batching_does_not_change_the_records(toy, readahead_s):
    per_step = Simulator(toy, seed=3, readahead_s=readahead_s)
    assert per_step.run(0) == {}  # nothing yet
    step_frames: dict[str, list] = {}
    for b in per_step.batches(per_step.start_ms + 3 * HOUR_MS):
        assert b.end_ms - b.start_ms == 60_000
        for k, df in b.frames.items():
            assert df["ts_ms"].min() >= b.start_ms and df["ts_ms"].max() < b.end_ms
            step_frames.setdefault(k, []).append(df)
    hourly = Simulator(toy, seed=3)
    big_frames: dict[str, list] = {}
    for b in hourly.batches(hourly.start_ms + 3 * HOUR_MS, batch_s=7200):
        for k, df in b.frames.items():
            big_frames.setdefault(k, []).append(df)
    assert set(step_frames) == set(big_frames)
    for k in step_frames:
        assert pl.concat(step_frames[k]).equals(pl.concat(big_frames[k])), k


def test_pickled_simulator_continues_identically(toy):
    sim = Simulator(toy, seed=9)
    list(sim.batches(sim.start_ms + 2 * HOUR_MS, batch_s=3600))
    clone = pickle.loads(pickle.dumps(sim))
    until = sim.start_ms + 4 * HOUR_MS
    assert _jsonl_until(sim, until) == _jsonl_until(clone, until)


def _jsonl_until(sim, until):
    return b"".join(to_jsonl(b.frames) for b in sim.batches(until, batch_s=600))


def test_jsonl_is_time_ordered_across_kinds(toy):
    data = _jsonl(Simulator(toy, seed=1), 1, batch_s=3600)
    ts = [msgspec.json.decode(line)["ts_ms"] for line in data.splitlines()]
    assert ts == sorted(ts)


def test_corrupt_injects_each_kind_reproducibly(toy):
    sim = Simulator(toy, seed=1)
    data = _jsonl(sim, 2, batch_s=3600)
    n = len(data.splitlines())
    bad, counts = corrupt(data, 0.1, seed=5, known_sensor_ids=sim.known_sensor_ids)
    assert bad == corrupt(data, 0.1, seed=5, known_sensor_ids=sim.known_sensor_ids)[0]
    assert set(counts) == set(CORRUPTIONS) and all(v > 0 for v in counts.values())
    assert sum(counts.values()) == round(0.1 * n)
    lines = bad.splitlines()
    assert len(lines) == n + counts["duplicate"]
    dec = msgspec.json.Decoder(Record)
    undecodable, unknown, out_of_range, late = 0, 0, 0, 0
    first_ts = msgspec.json.decode(data.splitlines()[0])["ts_ms"]
    for line in lines:
        try:
            rec = dec.decode(line)
        except msgspec.ValidationError:
            undecodable += 1
            continue
        except msgspec.DecodeError:
            undecodable += 1
            continue
        if rec.sensor_id not in sim.known_sensor_ids:
            unknown += 1
        if rec.ts_ms < first_ts:
            late += 1
        for f in rec.__struct_fields__:
            v = getattr(rec, f)
            if f in PHYSICAL_RANGE and isinstance(v, (int, float)) and not isinstance(v, bool):
                lo, hi = PHYSICAL_RANGE[f]
                if not lo <= v <= hi:
                    out_of_range += 1
                    break
    assert undecodable == counts["truncated"] + counts["wrong_type"] + counts["missing_field"]
    assert unknown == counts["unknown_sensor"]
    assert out_of_range == counts["out_of_range"]
    assert late >= counts["late"] * 0.5  # a late line early in the data may still be after the first one


def test_jsonl_batches_with_bad_fraction_counts(toy):
    sim = Simulator(toy, seed=1, bad_fraction=0.05)
    chunks = list(sim.jsonl_batches(sim.start_ms + HOUR_MS, batch_s=600))
    assert sum(sim.corruption_counts.values()) > 0
    clean = Simulator(toy, seed=1)
    assert b"".join(chunks) != b"".join(clean.jsonl_batches(clean.start_ms + HOUR_MS, batch_s=600))


@pytest.fixture(scope="module")
def two_hours(toy):
    sim = Simulator(toy, seed=2)
    frames = sim.run(2)
    return sim, frames


def _records(frames):
    return sorted(to_jsonl(frames).splitlines())


def _write(tmp_path, frames, fmt):
    if fmt == "jsonl":
        (tmp_path / "events.jsonl").write_bytes(to_jsonl(frames))
    for kind, df in frames.items():
        if fmt == "parquet":
            df.write_parquet(tmp_path / f"{kind}.parquet")
        elif fmt == "csv":
            df.write_csv(tmp_path / f"{kind}.csv")


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "csv"])
def test_replay_round_trips(tmp_path, two_hours, fmt):
    _, frames = two_hours
    _write(tmp_path, frames, fmt)
    src = ReplaySource(tmp_path, chunk_bytes=50_000, chunk_rows=700)
    assert src.format == fmt
    chunks = list(src.batches())
    assert len(chunks) > 3
    if fmt == "jsonl":
        assert all(isinstance(c, bytes) and c.endswith(b"\n") for c in chunks)
        for c in chunks:  # whole lines only
            for line in c.splitlines():
                msgspec.json.decode(line, type=Record)
    else:
        last = -1
        for c in chunks:  # merged by event time across kinds
            lo = min(df["ts_ms"].min() for df in c.values())
            assert lo >= last
            last = max(df["ts_ms"].max() for df in c.values())
    assert sorted(b"".join(src.iter_jsonl()).splitlines()) == _records(frames)
    got: dict[str, list] = {}
    for fr in src.iter_frames():
        for k, df in fr.items():
            got.setdefault(k, []).append(df)
    for k, df in frames.items():
        assert pl.concat(got[k]).sort(["ts_ms", "sensor_id"]).equals(df.sort(["ts_ms", "sensor_id"])), k


def test_replay_errors_are_clear(tmp_path, two_hours):
    with pytest.raises(ReplayError, match="no such file"):
        ReplaySource(tmp_path / "missing")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ReplayError, match="unknown recording format"):
        ReplaySource(tmp_path / "x.txt")
    (tmp_path / "bogus.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ReplayError, match="must be a record kind"):
        ReplaySource(tmp_path / "bogus.csv")
    (tmp_path / "noise.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ReplayError, match="differ from the noise schema"):
        list(ReplaySource(tmp_path / "noise.csv").batches())
    _, frames = two_hours
    frames["noise"].sort("ts_ms", descending=True).write_csv(tmp_path / "noise.csv")
    with pytest.raises(ReplayError, match="not sorted"):
        list(ReplaySource(tmp_path / "noise.csv").batches())
    (tmp_path / "bad.jsonl").write_bytes(b'{"kind":"noise","sensor_id":"N","ts_ms":1,"laeq_db":50}\n{"kind":"noi\n')
    assert len(b"".join(ReplaySource(tmp_path / "bad.jsonl").batches()).splitlines()) == 2  # raw bytes pass through
    with pytest.raises(ReplayError, match="malformed JSON"):
        list(ReplaySource(tmp_path / "bad.jsonl").iter_frames())


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "citybrain", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def _check_output(out, demo, fmt):
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == fmt and manifest["events"] > 5_000
    truth = json.loads((out / "ground_truth.json").read_text())
    assert isinstance(truth, list)
    # What the CLI wrote equals the library's output for the same arguments, record for record.
    sim = Simulator(demo, seed=3, start_ms=manifest["start_ms"])
    expect = sim.run(manifest["end_ms"] / HOUR_MS - manifest["start_ms"] / HOUR_MS)
    replayed = sorted(b"".join(ReplaySource(out).iter_jsonl()).splitlines())
    assert replayed == _records(expect)
    assert manifest["events_per_kind"] == {k: df.height for k, df in expect.items()}
    assert [t["scenario_id"] for t in truth] == sim.ground_truth["scenario_id"].to_list()
    return truth


def test_cli_simulate_one_hour_in_a_subprocess(tmp_path, demo):
    # Start at the hour of the day's first default scenario so the ground truth has something in it.
    probe = Simulator(demo, seed=3)
    probe._schedule(probe.start_ms, probe.start_ms + 1)
    first_ms = min(t.start_ms for t in probe.engine.truths())
    start = dt.datetime.fromtimestamp(first_ms // HOUR_MS * 3600, ZoneInfo(demo.timezone)).replace(tzinfo=None)
    out = tmp_path / "day"
    r = _cli("simulate", "--out", str(out), "--hours", "1", "--start", start.isoformat(), "--seed", "3",
             "--format", "jsonl", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "events/s" in r.stdout and "traffic" in r.stdout
    truth = _check_output(out, demo, "jsonl")
    assert truth and truth[0]["start_ms"] == first_ms


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_cli_simulate_columnar_formats(tmp_path, demo, fmt, capsys):
    from citybrain.cli import main

    out = tmp_path / fmt
    assert main(["simulate", "--out", str(out), "--hours", "0.5", "--start", "2026-06-01T08:00+08:00", "--seed", "3",
                 "--format", fmt, "--quiet"]) == 0
    assert "events/s" in capsys.readouterr().out
    assert (out / f"traffic.{fmt}").exists() and not (out / "events.jsonl").exists()
    _check_output(out, demo, fmt)


@pytest.mark.parametrize("args, message", [
    (["--hours", "-1"], "--hours"),
    (["--hours", "1", "--start", "yesterday"], "--start"),
    (["--hours", "1", "--city", "/nonexistent/city"], "cannot load city"),
    (["--hours", "1", "--format", "csv", "--bad-fraction", "0.1"], "jsonl"),
    (["--hours", "1", "--step-s", "0"], "step_s"),
])
def test_cli_bad_arguments_are_user_errors(tmp_path, capsys, args, message):
    from citybrain.cli import main

    assert main(["simulate", "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_out_of_range_corruptions_fail_on_range_not_type():
    """Every kind of record, corrupted out of range, still decodes and is caught by the physical range."""
    lines = [
        b'{"kind":"outage","sensor_id":"O","ts_ms":1780000000000,"outage_id":"x","utility":"power","status":"start","cell_id":"C","customers":5}',
        b'{"kind":"incident","sensor_id":"I","ts_ms":1780000000000,"incident_id":"x","status":"reported","type":"fire","severity":3,"lon":120.0,"lat":30.0,"units":0,"segment_id":null}',
        b'{"kind":"probe","sensor_id":"P","ts_ms":1780000000000,"travel_time_s":50.0,"samples":3}',
        b'{"kind":"grid_case","sensor_id":"G","ts_ms":1780000000000,"case_id":"c","status":"reported","category":"garbage","cell_id":"C","unit":"u","deadline_ms":9}',
    ] * 50
    data = b"\n".join(lines) + b"\n"
    bad, counts = corrupt(data, 1.0, seed=1)
    assert counts["out_of_range"] > 0
    dec = msgspec.json.Decoder(Record)
    ranged = 0
    for line in bad.splitlines():
        try:
            rec = dec.decode(line)
        except (msgspec.ValidationError, msgspec.DecodeError):
            continue
        for f in rec.__struct_fields__:
            v = getattr(rec, f)
            if f in PHYSICAL_RANGE and isinstance(v, (int, float)) and not (PHYSICAL_RANGE[f][0] <= v <= PHYSICAL_RANGE[f][1]):
                ranged += 1
                break
    assert ranged == counts["out_of_range"]
