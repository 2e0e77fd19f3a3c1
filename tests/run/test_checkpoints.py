"""Safe checkpoints: data only (a pickle is never run), checksummed, atomic, the previous good one
kept; a damaged latest falls back, and no damage ever surfaces as a traceback."""
from __future__ import annotations

import asyncio
import os
import pickle
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.checkpoint import StateFormatError, decode, encode
from brain.pipeline import CityPipeline
from streams.checkpoint_file import CheckpointError, CheckpointFile
from streams.feeds import SimulatorSource
from streams.local import LocalDriver


class _Marker:
    """Unpickling this writes a file: the proof that a pickle ran code."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_round_trip_of_every_kind_of_state_value():
    state = {"i": -(2**62), "f": 1.5, "nan": float("nan"), "s": "街", "b": b"\x00\xff", "none": None, "list": [1, (2, 3)],
             "arr": np.arange(6, dtype=np.int32).reshape(2, 3), "bools": np.array([True, False]),
             "empty": np.zeros((0, 4)), "frame": pl.DataFrame({"a": [1, None], "s": ["x", None]}), "int_keys": {3: 4}}
    back = decode(encode(state))
    assert back["i"] == state["i"] and back["s"] == "街" and back["b"] == b"\x00\xff" and back["list"] == [1, [2, 3]]
    assert np.isnan(back["nan"]) and back["int_keys"] == {3: 4}
    assert back["arr"].dtype == np.int32 and back["arr"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert back["empty"].shape == (0, 4) and back["bools"].tolist() == [True, False]
    assert back["frame"].equals(state["frame"], null_equal=True)
    with pytest.raises(TypeError):
        encode({"x": object()})
    with pytest.raises(TypeError):
        encode({"x": np.array([object()])})


def test_a_malicious_pickle_is_never_run(tmp_path):
    marker = tmp_path / "pwned"
    evil = pickle.dumps({"version": 2, "pipeline": _Marker(str(marker))})
    # as the whole checkpoint file
    (tmp_path / "checkpoint.bin").write_bytes(evil)
    with pytest.raises(CheckpointError, match="pickle"):
        CheckpointFile(tmp_path / "checkpoint.bin").load()
    # as the state bytes inside a well-formed checkpoint, for the pipeline and a window operator
    with pytest.raises(StateFormatError):
        decode(evil)
    assert not marker.exists()


def test_the_cli_refuses_a_pickled_checkpoint_clearly(tmp_path, city):
    marker = tmp_path / "pwned"
    out = tmp_path / "out"
    out.mkdir()
    (out / "checkpoint.bin").write_bytes(pickle.dumps(_Marker(str(marker))))
    proc = subprocess.run([sys.executable, "-m", "citybrain", "run", "--headless", "--speed", "0", "--duration", "10m",
                           "--no-alerts", "--no-http", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "pickle" in proc.stderr and "--fresh" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()


def _two_saves(tmp_path) -> CheckpointFile:
    ckpt = CheckpointFile(tmp_path / "checkpoint.bin")
    ckpt.save({"n": 1, "arr": np.arange(100)})
    ckpt.save({"n": 2, "arr": np.arange(100)})
    return ckpt


@pytest.mark.parametrize("damage", ["truncate_header", "truncate_payload", "flip_payload", "flip_header", "empty", "garbage"])
def test_a_damaged_latest_falls_back_to_the_previous_good_one(tmp_path, damage):
    ckpt = _two_saves(tmp_path)
    data = bytearray(ckpt.path.read_bytes())
    if damage == "truncate_header":
        data = data[:10]
    elif damage == "truncate_payload":
        data = data[:-7]
    elif damage == "flip_payload":
        data[-3] ^= 0x40
    elif damage == "flip_header":
        data[20] ^= 0x01
    elif damage == "empty":
        data = b""
    else:
        data = os.urandom(500)
    ckpt.path.write_bytes(bytes(data))
    assert ckpt.load()["n"] == 1 and ckpt.fell_back
    # the next save must not push the good previous one out for the damaged latest
    ckpt.save({"n": 3})
    assert ckpt.load()["n"] == 3 and CheckpointFile(ckpt.path).load()["n"] == 3
    assert decode_prev(ckpt)["n"] == 1


def decode_prev(ckpt: CheckpointFile):
    ckpt.path.unlink()
    return ckpt.load()


def test_both_damaged_is_a_clear_error_naming_each_file(tmp_path):
    ckpt = _two_saves(tmp_path)
    ckpt.path.write_bytes(ckpt.path.read_bytes()[:-1])
    ckpt.previous.write_bytes(b"junk")
    with pytest.raises(CheckpointError) as err:
        ckpt.load()
    assert "truncated" in str(err.value) and "bad header" in str(err.value) and ckpt.previous.name in str(err.value)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_damage_to_a_checkpoint_is_caught_or_harmless(tmp_path_factory, data):
    """Random truncation, byte flips and insertions: load returns the latest intact state or the
    previous one, or raises CheckpointError, nothing else."""
    tmp = tmp_path_factory.mktemp("ck")
    ckpt = _two_saves(tmp)
    raw = bytearray(ckpt.path.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["cut", "flip", "insert"]))
        i = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "cut":
            raw = raw[:i]
        elif op == "flip" and raw:
            raw[i] ^= data.draw(st.integers(1, 255))
        else:
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    ckpt.path.write_bytes(bytes(raw))
    if data.draw(st.booleans()):
        ckpt.previous.write_bytes(ckpt.previous.read_bytes()[: data.draw(st.integers(0, 60))])
    try:
        state = ckpt.load()
    except CheckpointError:
        return
    assert state["n"] in (1, 2) and state["arr"].tolist() == list(range(100))


def test_a_pipeline_checkpoint_round_trips_through_the_file(tmp_path, city):
    source = SimulatorSource(city, seed=3)
    driver = LocalDriver(CityPipeline(city), source, tmp_path, until_ms=source.start_ms + 3_600_000)
    asyncio.run(driver.run())
    again = LocalDriver(CityPipeline(city), SimulatorSource(city, seed=3), tmp_path)
    assert again.resume()
    assert again.pipeline.counters == driver.pipeline.counters
    assert again.source.position_ms == source.position_ms
    # the simulator rebuilt from plain data continues with the same records
    a, b = next(source.batches()), next(again.source.batches())
    assert a.stream_time_ms == b.stream_time_ms and sorted(a.frames) == sorted(b.frames)
    for kind in a.frames:
        assert a.frames[kind].equals(b.frames[kind], null_equal=True)


def test_a_simulator_checkpoint_of_another_seed_is_refused(tmp_path, city):
    source = SimulatorSource(city, seed=3)
    with pytest.raises(ValueError, match="simulator checkpoint was taken with"):
        SimulatorSource(city, seed=4).load(source.state())
