"""Differential test: the same recorded input through the local pipeline and through Kafka into the Faust
worker (a real tansu broker, the real `citybrain worker` / `citybrain produce` commands) must give the same
district vital signs for the windows both closed, the same dead-letter reasons and the same accounting."""
from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from brain.pipeline import CityPipeline
from streams.sim import Simulator

HOURS = 2
SEED = 11
TIMEOUT_S = 40


@pytest.fixture(scope="module")
def recorded(city):
    """Two simulated hours as JSON-line batches of one minute, 1% of lines corrupted."""
    sim = Simulator(city, seed=SEED, bad_fraction=0.01)
    return list(sim.jsonl_batches(sim.start_ms + HOURS * 3_600_000, batch_s=60))


def _norm(value):
    # NaN != NaN; compare "no data" as a marker instead.
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return value


def _rows(rows: list[dict]) -> list[dict]:
    return sorted(({k: _norm(v) for k, v in r.items()} for r in rows), key=lambda r: json.dumps(r, sort_keys=True, default=str))


@pytest.fixture(scope="module")
def local(city, recorded):
    """The reference: the pipeline fed in-process, batch by batch."""
    pipe = CityPipeline(city)
    district: dict[int, list[dict]] = {}
    reasons: Counter[str] = Counter()
    for batch in recorded:
        result = pipe.ingest_jsonl(batch)
        for w in result.windows:
            district[w.window_end_ms] = _rows(w.vitals["district"].to_dicts())
        reasons.update(result.dead["reason_code"].to_list())
        reasons.update(result.late["reason_code"].to_list())
    return pipe, district, reasons


def _cli(*args: str, cwd: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "citybrain", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, **kw)


def _produce(lines: list[bytes], path: Path, broker: str) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    proc = _cli("produce", str(path), "--broker", broker, cwd=path.parent)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out.decode()


class Worker:
    def __init__(self, broker: str, out: Path):
        out.mkdir(exist_ok=True)
        self.log = (out / "worker.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "citybrain", "worker", "--broker", broker, "--out", str(out), "--batch", "3000", "--within", "0.3"],
            cwd=out, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.out = out

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()

    def wait_for_records(self, city, n: int):
        """Poll the worker's checkpoint until it has taken in ``n`` records; returns the restored pipeline."""
        from streams.faust_driver import checkpoint_path, read_checkpoint

        path = checkpoint_path(self.out)
        deadline = time.monotonic() + TIMEOUT_S
        seen = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"worker exited with {self.proc.returncode}: {(self.out / 'worker.log').read_text()[-3000:]}")
            if path.exists():
                pipe, _ = read_checkpoint(path, city)
                seen = pipe.counters["records_in"]
                if seen >= n:
                    return pipe
            time.sleep(0.2)
        pytest.fail(f"worker took in {seen} of {n} records within {TIMEOUT_S} s: {(self.out / 'worker.log').read_text()[-3000:]}")


async def _read_topic(bootstrap: str, topic: str, n: int) -> list[tuple[bytes | None, bytes]]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    out = []
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while len(out) < n and time.monotonic() < deadline:
            got = await consumer.getmany(timeout_ms=500)
            for msgs in got.values():
                out.extend((m.key, m.value) for m in msgs)
        # Anything beyond n would be a repeat: give it a moment to show up.
        for msgs in (await consumer.getmany(timeout_ms=500)).values():
            out.extend((m.key, m.value) for m in msgs)
    finally:
        await consumer.stop()
    return out


def _outputs(broker: str, pipe: CityPipeline):
    from streams.faust_driver import DEADLETTER_TOPIC, VITALS_TOPIC, bootstrap_of

    c = pipe.counters
    boot = bootstrap_of(broker)
    vitals = asyncio.run(_read_topic(boot, VITALS_TOPIC, 2 * c["windows_closed"]))
    dead = asyncio.run(_read_topic(boot, DEADLETTER_TOPIC, c["dead_lettered"] + c["late"]))
    district: dict[int, list[dict]] = {}
    tables: Counter[str] = Counter()
    for key, value in vitals:
        msg = json.loads(value)
        assert key.decode() == f"{msg['table']}:{msg['window_end_ms']}"
        tables[msg["table"]] += 1
        if msg["table"] == "district":
            rows = _rows(msg["rows"])
            # At-least-once: a repeated window must repeat the same rows.
            assert district.setdefault(msg["window_end_ms"], rows) == rows
    reasons = Counter(json.loads(v)["reason_code"] for _, v in dead)
    return district, tables, reasons


def _compare(local, faust_pipe: CityPipeline, broker: str, n_lines: int) -> None:
    ref_pipe, ref_district, ref_reasons = local
    assert faust_pipe.invariant_holds()
    assert faust_pipe.counters["records_in"] == n_lines == ref_pipe.counters["records_in"]
    # Batching may differ (take() fills batches by time and count), the accounting may not.
    assert {k: v for k, v in faust_pipe.counters.items() if k != "windows_closed"} == \
           {k: v for k, v in ref_pipe.counters.items() if k != "windows_closed"}
    district, tables, reasons = _outputs(broker, faust_pipe)
    assert tables["district"] == tables["city"] == faust_pipe.counters["windows_closed"]
    both = sorted(set(district) & set(ref_district))
    assert len(both) >= HOURS * 12 - 2, (len(both), len(district), len(ref_district))
    for end in both:
        assert district[end] == ref_district[end], f"district vital signs differ for the window ending {end}"
    assert reasons == ref_reasons
    # The input is meant to exercise the dead-letter paths; make sure it did.
    assert {"malformed", "duplicate", "late", "unknown_sensor", "out_of_range"} <= set(reasons)


def test_faust_worker_matches_local_pipeline(broker, city, recorded, local, tmp_path):
    lines = [line for batch in recorded for line in batch.split(b"\n") if line]
    worker = Worker(broker, tmp_path / "worker")
    try:
        _produce(lines, tmp_path / "input.jsonl", broker)
        pipe = worker.wait_for_records(city, len(lines))
        _compare(local, pipe, broker, len(lines))
    finally:
        worker.stop()


def test_killed_worker_resumes_without_applying_twice(broker, city, recorded, local, tmp_path):
    lines = [line for batch in recorded for line in batch.split(b"\n") if line]
    half = len(lines) // 2
    out = tmp_path / "worker"
    first = Worker(broker, out)
    try:
        _produce(lines[:half], tmp_path / "first.jsonl", broker)
        first.wait_for_records(city, half)
    finally:
        # No clean shutdown: offsets of the last batches are probably not committed yet.
        first.stop(signal.SIGKILL)
    second = Worker(broker, out)
    try:
        _produce(lines[half:], tmp_path / "second.jsonl", broker)
        second.wait_for_records(city, half + len(lines) // 4)
    finally:
        # A clean stop while the rest is still streaming in: it may land in the middle of a batch.
        second.stop(signal.SIGTERM)
    third = Worker(broker, out)
    try:
        pipe = third.wait_for_records(city, len(lines))
        _compare(local, pipe, broker, len(lines))
    finally:
        third.stop()
