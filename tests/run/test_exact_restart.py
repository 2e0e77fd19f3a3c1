"""Exact restarts of the local driver: a stop mid-file, a crash between writing history and saving
the checkpoint, and a real SIGTERM to ``citybrain run``, each compared with an uninterrupted run of
the same recording: identical history (every table, every row, bit for bit), every record
accounted for."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from brain.pipeline import CityPipeline
from streams.feeds import FileSource
from streams.local import LocalDriver

CHUNK = 256 * 1024  # several batches per simulated hour


class Crash(Exception):
    pass


@pytest.fixture(scope="module")
def recording(tmp_path_factory, city):
    from streams.sim import Simulator

    path = tmp_path_factory.mktemp("rec") / "day.jsonl"
    sim = Simulator(city, seed=11)
    with path.open("wb") as fh:
        for chunk in sim.jsonl_batches(sim.start_ms + 3 * 3_600_000, batch_s=3600):
            fh.write(chunk)
    return path


def _driver(city, path: Path, out: Path) -> LocalDriver:
    source = FileSource(path)
    source.replay.chunk_bytes = CHUNK
    driver = LocalDriver(CityPipeline(city), source, out, checkpoint_every_s=0.0, source_key=f"file:{path}")
    driver.resume()
    return driver


def history(out: Path) -> Counter:
    rows: Counter = Counter()
    for table in sorted(p for p in (out / "history").iterdir() if p.is_dir()):
        frame = pl.concat([pl.read_parquet(f) for f in sorted(table.glob("*.parquet"))], how="diagonal_relaxed")
        frame = frame.select(sorted(frame.columns))
        rows.update((table.name, h) for h in frame.hash_rows(seed=0).to_list())
    return rows


@pytest.fixture(scope="module")
def straight(recording, city, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    driver = _driver(city, recording, out)
    asyncio.run(driver.run())
    lines = sum(1 for line in recording.read_bytes().split(b"\n") if line.strip())
    assert driver.pipeline.counters["records_in"] == lines
    return history(out), driver.pipeline.counters.copy()


def _accounting(driver) -> tuple[int, int, int, int]:
    c = driver.pipeline.counters
    return c["records_in"], c["applied"], c["dead_lettered"], c["late"]


def test_a_stop_mid_file_finishes_its_batch_and_loses_nothing(recording, city, tmp_path, straight):
    driver = _driver(city, recording, tmp_path)
    seen = []

    def stop_at_third(result):
        seen.append(result.records_in)
        if len(seen) == 3:
            driver.stop()

    driver.batch_handlers.append(stop_at_third)
    asyncio.run(driver.run())
    assert len(seen) == 3
    # the batch read before the stop was processed and is in the checkpoint
    assert driver.pipeline.counters["records_in"] == sum(seen)
    again = _driver(city, recording, tmp_path)
    assert again.resumed and again.pipeline.counters["records_in"] == sum(seen)
    asyncio.run(again.run())
    rows, counters = straight
    assert _accounting(again) == (counters["records_in"], counters["applied"], counters["dead_lettered"], counters["late"])
    assert history(tmp_path) == rows


def test_a_crash_between_history_and_checkpoint_writes_no_row_twice(recording, city, tmp_path, straight):
    """The first run checkpoints every third batch and dies after writing the history of its second
    checkpoint but before saving it; the restart checkpoints after every batch (its history files
    are cut differently, so only removing the uncommitted ones avoids duplicates)."""
    driver = _driver(city, recording, tmp_path)
    save, saves, batches = driver.checkpoints.save, [], []

    def crash_on_second_save(state):
        saves.append(1)
        if len(saves) == 2:
            raise Crash()
        save(state)

    def every_third(_result):
        batches.append(1)
        if len(batches) % 3 == 0:
            driver.checkpoint()

    driver.checkpoint_every_s = float("inf")
    driver.checkpoints.save = crash_on_second_save
    driver.batch_handlers.append(every_third)
    with pytest.raises(Crash):
        asyncio.run(driver.run())
    written = history(tmp_path)
    again = _driver(city, recording, tmp_path)
    assert sum(history(tmp_path).values()) < sum(written.values()), "the uncommitted history was not removed"
    asyncio.run(again.run())
    rows, counters = straight
    assert history(tmp_path) == rows
    assert again.pipeline.counters["records_in"] == counters["records_in"]


def test_no_checkpoint_means_no_committed_output(recording, city, tmp_path, straight):
    """A crash before the first checkpoint was saved: its history and dead letters are not kept."""
    driver = _driver(city, recording, tmp_path)

    def crash(_state):
        raise Crash()

    driver.checkpoints.save = crash
    driver.checkpoint_every_s = float("inf")
    driver.batch_handlers.append(lambda _r, n=[]: (n.append(1), len(n) == 10 and driver.checkpoint()))
    with pytest.raises(Crash):
        asyncio.run(driver.run())
    assert any((tmp_path / "history").rglob("*.parquet"))
    again = _driver(city, recording, tmp_path)
    assert not again.resumed
    asyncio.run(again.run())
    assert history(tmp_path) == straight[0]


def _recorded_day_run_whole(tmp_path, city, seed: int) -> tuple[list[str], dict[str, str]]:
    """Six simulated hours recorded to a file, run once without a stop into ``tmp_path/whole``: the
    ``citybrain run`` command line and environment to run it again, checkpointing after every batch."""
    from streams.sim import Simulator

    rec = tmp_path / "day.jsonl"
    sim = Simulator(city, seed=seed)
    with rec.open("wb") as fh:
        for chunk in sim.jsonl_batches(sim.start_ms + 6 * 3_600_000, batch_s=3600):
            fh.write(chunk)
    env = {**os.environ, "PYTHONHASHSEED": "0", "CITYBRAIN_CHECKPOINT_EVERY_S": "0"}
    cli = [sys.executable, "-m", "citybrain", "run", "--source", str(rec), "--headless", "--no-alerts", "--no-http"]
    whole = subprocess.run([*cli, "--speed", "0", "--out", str(tmp_path / "whole")], capture_output=True, text=True,
                           timeout=300, env=env)
    assert whole.returncode == 0, whole.stderr
    return cli, env


def test_sigterm_to_citybrain_run_mid_file_then_restart(tmp_path, city):
    """The real signal path: `citybrain run --source FILE` paced at 1 simulated hour per second,
    SIGTERM once its first checkpoint is on disk, then run again; the history equals a run that
    was never stopped."""
    cli, env = _recorded_day_run_whole(tmp_path, city, seed=5)
    out = tmp_path / "stopped"
    proc = subprocess.Popen([*cli, "--speed", "3600", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out / "checkpoint.bin").exists() and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    partial = history(out)
    assert 0 < sum(partial.values()) < sum(history(tmp_path / "whole").values()), "the stop did not land mid-file"
    again = subprocess.run([*cli, "--speed", "0", "--out", str(out)], capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0, again.stderr
    assert history(out) == history(tmp_path / "whole")


def test_kill_9_at_random_moments_then_finish(tmp_path, city):
    """`citybrain run --source FILE` killed with SIGKILL three times at random moments (a checkpoint
    after every batch, so the kills land in reading, computing, writing history or saving the
    checkpoint), then run to the end: the history equals a run never interrupted."""
    import random

    cli, env = _recorded_day_run_whole(tmp_path, city, seed=9)
    out = tmp_path / "killed"
    rng = random.Random()
    kills = 0
    for _ in range(3):
        proc = subprocess.Popen([*cli, "--speed", "7200", "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, env=env)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (out / "checkpoint.bin").exists() and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 2.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=60)
    assert kills >= 1
    again = subprocess.run([*cli, "--speed", "0", "--out", str(out)], capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0, again.stderr
    assert history(out) == history(tmp_path / "whole")


#: every stage boundary of the driver's loop and of its checkpoint, as (object path, method): a crash
#: inside that call leaves everything before it done and nothing after it
BOUNDARIES = [("dead", "add"), ("late", "add"), ("history", "add_stacked"), ("history", "flush"), ("dead", "flush"),
              ("late", "flush"), ("checkpoints", "save"), ("window handler", None), ("batch handler", None)]


@pytest.mark.parametrize("where", BOUNDARIES, ids=lambda w: ".".join(x for x in w if x))
def test_a_crash_at_any_stage_boundary_then_restart_gives_the_uninterrupted_history(recording, city, tmp_path, straight, where):
    """The test picks the boundary and (at random) which call dies; the run is then started again on the
    same folder and finished: identical history, every record accounted for exactly once."""
    import random

    owner, method = where
    nth = random.Random().randint(2, 6)
    driver = _driver(city, recording, tmp_path)
    driver.checkpoint_every_s = 0.0  # a checkpoint after every batch: every boundary is crossed many times
    calls = []

    def dying(real=None):
        def call(*args, **kwargs):
            calls.append(1)
            if len(calls) == nth:
                raise Crash()
            return real(*args, **kwargs) if real is not None else None
        return call

    if owner == "window handler":
        driver.window_handlers.append(dying())
    elif owner == "batch handler":
        driver.batch_handlers.append(dying())
    else:
        target = getattr(driver, owner)
        setattr(target, method, dying(getattr(target, method)))
    with pytest.raises(Crash):
        asyncio.run(driver.run())
    assert len(calls) == nth
    again = _driver(city, recording, tmp_path)
    asyncio.run(again.run())
    rows, counters = straight
    assert history(tmp_path) == rows
    assert _accounting(again) == (counters["records_in"], counters["applied"], counters["dead_lettered"], counters["late"])
