"""The distributed engine's read path against a real Kafka-protocol broker (tansu): idle partitions
and dead letters keyed by where their record was read.

- An input partition that never gets a record: with an idleness timeout the merge leaves it out,
  the other partitions' windows are published, identical to the local pipeline's over the same
  records (ended with ``flush``, as idle partitions close what their records cover); the merge
  alone (no broker) waits for it forever without the idle marker.
- Dead letters after crashes: a worker dies (exit 137) right after its second batch's outputs went
  out and before its checkpoint, and another is SIGKILLed mid-stream; both restarted. Copies of a
  dead letter carry the same key and value, and one per key gives exactly the local pipeline's
  dead letters.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from brain.pipeline import CityPipeline, PipelineConfig
from streams.sim import Simulator
from tests.faust.workers import WorkerProcs, produce, read_topic, table_rows

SEED = 29
MINUTES = 45
PARTITIONS = 3
TABLES = ("district", "city", "anomaly", "sensor_faults", "signal_plans")


@pytest.fixture(scope="module")
def lines(city):
    sim = Simulator(city, seed=SEED, bad_fraction=0.01)
    return [line for b in sim.jsonl_batches(sim.start_ms + MINUTES * 60_000, batch_s=60) for line in b.split(b"\n") if line]


def _operators(city, out):
    from streams.faust_driver import merge_operators

    return merge_operators(city, PipelineConfig(), out)


class Workers(WorkerProcs):
    """``citybrain worker`` processes of one app sharing one --out directory."""

    def __init__(self, broker: str, out: Path, partitions: int = PARTITIONS):
        super().__init__(broker, out, partitions)

    def start(self, i: int, env: dict | None = None, extra: tuple[str, ...] = ()) -> None:
        args = ["worker", "--broker", self.broker, "--out", str(self.out), "--partitions", str(self.partitions), "--id", str(i),
                "--batch", "40", "--within", "0.3", *extra]
        self.procs[i] = subprocess.Popen([sys.executable, "-m", "citybrain", *args], cwd=self.out,
                                         stdout=(self.out / f"worker{i}.log").open("ab"), stderr=subprocess.STDOUT,
                                         env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def local(city, lines, tmp_path_factory):
    """The reference: the local pipeline with the merge stage's operators, batches of 2000 lines."""
    from streams.faust_driver import deadletter_messages

    pipe = CityPipeline(city, window_operators=_operators(city, tmp_path_factory.mktemp("local")))
    reasons: Counter[tuple[str, str]] = Counter()
    for i in range(0, len(lines), 2000):
        result = pipe.ingest_jsonl(b"\n".join(lines[i:i + 2000]))
        reasons.update((m["reason_code"], m["raw"]) for m in map(json.loads, deadletter_messages(result)))
    return pipe.counters, reasons


def _published(broker: str, topics: tuple[str, str]):
    from streams.faust_driver import bootstrap_of, decode_vitals_message

    tables = {}
    for key, value in asyncio.run(read_topic(bootstrap_of(broker), topics[0])):
        msg = decode_vitals_message(value)
        rows = table_rows(msg["rows"])
        assert tables.setdefault((msg["table"], msg["window_end_ms"]), rows) == rows, f"{key} repeated with other rows"
    dead = asyncio.run(read_topic(bootstrap_of(broker), topics[1]))
    return tables, dead


def test_merge_waits_for_a_silent_partition_until_it_is_marked_idle(city):
    from streams.faust_stages import MergePipeline, Partial, PartitionPipeline, decode_partial, encode_partial
    from streams.sim import Simulator

    sim = Simulator(city, seed=5)
    data = b"".join(sim.jsonl_batches(sim.start_ms + 20 * 60_000, batch_s=60))
    part = PartitionPipeline(city, partition=0)
    part.ingest_jsonl(data)
    merge = MergePipeline(city, partitions=2)
    closed = [w for p in part.take_partials() for w in merge.add(decode_partial(encode_partial(p)))]
    assert closed == [] and merge.merged_upto() is None, "partition 1 has sent nothing: nothing may close"
    marker = decode_partial(encode_partial(Partial(1, [], None, idle=True)))
    assert marker.idle and marker.key == b"1:idle"
    closed = merge.add(marker)
    assert [w.window_end_ms for w in closed] == list(range(closed[0].window_end_ms, part.closed_upto + 1, 300_000))
    again = MergePipeline(city, partitions=2)
    again.restore(merge.snapshot())
    assert again.idle == {1}
    merge.add(Partial(1, [], None))  # records again: the merged watermark waits for it once more
    assert merge.idle == set() and merge.merged_upto() is None


def test_an_empty_partition_does_not_hold_the_windows_back(broker, city, lines, tmp_path):
    from streams.faust_driver import record_key
    from streams.faust_stages import hash_partition

    partitions = PARTITIONS
    # Partition 2 gets nothing (lines with no sensor_id are left out too: produce spreads those round the partitions).
    mine = [line for line in lines if record_key(line) is not None and hash_partition(line, partitions) != 2]
    pipe = CityPipeline(city, window_operators=_operators(city, tmp_path / "local"))
    ref = {}
    steps = [b"\n".join(mine[i:i + 2000]) for i in range(0, len(mine), 2000)]  # as the workers close ticks: a few at a time
    for result in [*map(pipe.ingest_jsonl, steps), pipe.flush()]:
        for w in result.windows:
            for name in TABLES:
                if name in w.vitals:
                    ref[(name, w.window_end_ms)] = table_rows(w.vitals[name].to_dicts())
    last_end = max(end for _, end in ref)
    workers = Workers(broker, tmp_path / "out", partitions=partitions)
    try:
        produce(mine, tmp_path / "input.jsonl", broker, PARTITIONS)
        workers.start(0, extra=("--idle-timeout", "2"))

        def merged(status):
            return status["records_in"] >= len(mine) and (status["merge"].get("merged_upto") or 0) >= last_end

        status = workers.wait(merged, "every window merged with partition 2 empty")
    finally:
        workers.stop_all()
    got = {k: v for k, v in status["counters"].items() if k not in ("windows_closed", "ticks_closed")}
    assert got == {k: v for k, v in pipe.counters.items() if k not in ("windows_closed", "ticks_closed")}
    tables, _ = _published(broker, workers.topics)
    tables = {k: v for k, v in tables.items() if k[0] in TABLES}
    assert {end for _, end in tables} == {end for _, end in ref}, "a window is missing or extra"
    assert tables == ref


def test_dead_letters_repeated_by_crashes_share_a_key(broker, lines, local, tmp_path):
    _, ref_reasons = local
    workers = Workers(broker, tmp_path / "out")
    try:
        produce(lines, tmp_path / "input.jsonl", broker, PARTITIONS)
        workers.start(0, env={"CITYBRAIN_FAUST_EXIT_AFTER_BATCH": "2"})  # dies between its outputs and its checkpoint
        workers.start(1)
        deadline = time.monotonic() + 420
        while workers.procs[0].poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert workers.procs[0].returncode == 137, workers.logs()
        workers.start(0)
        workers.wait(lambda s: s["records_in"] >= len(lines) // 2, "half in")
        workers.kill(1)  # kill -9 mid-stream
        workers.start(1)
        workers.wait(lambda s: s["records_in"] >= len(lines) and s["merged_all"], "every record in after the restarts")
    finally:
        workers.stop_all()
    _, dead = _published(broker, workers.topics)
    by_key: dict[bytes, bytes] = {}
    for key, value in dead:
        assert key is not None, f"a dead letter without a key: {value[:200]}"
        # The same record and reason code under one key. (A late record's reason text names the
        # watermark it was judged against, which depends on how the replay batched: not compared.)
        first = json.loads(by_key.setdefault(key, value))
        again = json.loads(value)
        assert (first["reason_code"], first["raw"]) == (again["reason_code"], again["raw"]), f"{key} carries two different dead letters"
    assert len(dead) > len(by_key), "the crash between sending and checkpointing repeated no dead letter"
    once = Counter((m["reason_code"], m["raw"]) for m in map(json.loads, by_key.values()))
    assert once == ref_reasons, "one dead letter per key is not the local pipeline's dead letters"
    positional = [k for k in by_key if b":x" not in k]
    assert len(positional) == len(by_key), f"dead letters keyed by batch order, not position: {[k for k in by_key if b':x' in k][:5]}"
