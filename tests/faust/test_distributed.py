"""DISTRIBUTED ENGINE, differential and fault tests against a real Kafka-protocol broker (tansu).

The same recorded stretch (1 % corrupted lines: malformed, duplicates, late, unknown sensors, out of
range) goes through the local pipeline in-process (the reference) and, as blocks keyed by sensor
over a 3-partition topic, through 1, 2 and 3 real ``citybrain worker`` processes (one consumer
group): the per-partition stages' accounting summed equals the local one, and every window both
closed has the same district and city vital signs, anomaly scores, sensor faults, green-wave
plans and cockpit case tables, to the bit (NaN compared as a marker), and the merge stage's alert
service (the shipped rule packs, the alert pipeline, its state in a real Redis, one database per
app) logged the same notifications, idempotency key by key, as the local pipeline feeding an alert
service of its own. Partials travel in 16 KB pieces, so a tick's partial spans several messages.
Then workers die mid-stream (one between sending its
outputs and saving its checkpoint, one by SIGKILL) and are started again: the same results, nothing
lost, no notification twice, and a window published twice (at-least-once after a kill) repeats the
same rows under the same key — so a consumer keeping the last message per key sees each window once.

Slow by nature (real processes, group joins): ~1-2 min in all on 2 cores.
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

from brain.pipeline import CityPipeline
from streams.sim import Simulator
from tests.faust.workers import TIMEOUT_S, WorkerProcs, produce, read_topic, table_rows

SEED = 23
MINUTES = 60
PARTITIONS = 3
TABLES = ("district", "city", "anomaly", "sensor_faults", "signal_plans", "grid_unit")
PIECE_BYTES = 16 << 10  # small pieces: the merge reassembles partials from several messages
#: every rule, every severity, grouped per incident, to a log channel (nothing to receive)
SUBSCRIPTION = {"id": "all", "department": "City command", "group_by": ["incident"], "group_wait": "1m",
                "group_interval": "10m", "channel": {"type": "log"}}
NOTE_FIELDS = ("key", "sub", "status", "reason", "ts_ms", "alerts", "summary")


def _redis_url(socket: str, db: int) -> str:
    return f"unix://{socket}?db={db}"


def _seed_alert_state(url: str) -> None:
    """An empty alert state in that Redis database, with the one subscription."""
    from brain.alerts.routing import Subscription
    from streams.alerts.store import AlertStore

    async def seed():
        store = AlertStore.from_url(url)
        await store.r.flushdb()
        await store.put_subscription(Subscription.from_dict(SUBSCRIPTION), actor="test")
        await store.close()

    asyncio.run(seed())


def _notifications(url: str) -> list[tuple]:
    """Every notification the alert service logged in that Redis database, in order."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        rows = client.xrange("citybrain:alerts:notifications")
    finally:
        client.close()
    return [tuple(fields[f.encode()].decode() for f in NOTE_FIELDS) for _, fields in rows]


@pytest.fixture(scope="module")
def lines(city):
    sim = Simulator(city, seed=SEED, bad_fraction=0.01)
    return [line for b in sim.jsonl_batches(sim.start_ms + MINUTES * 60_000, batch_s=60) for line in b.split(b"\n") if line]


@pytest.fixture(scope="module")
def local(city, lines, tmp_path_factory, redis_socket):
    """The reference: the local pipeline with the merge stage's operators, batches of 2000 lines,
    each closed window through an alert service (real Redis, database 10), as ``citybrain run``."""
    from brain.pipeline import PipelineConfig
    from streams.alerts.service import AlertService
    from streams.faust_driver import deadletter_messages, merge_operators

    pipe = CityPipeline(city, window_operators=merge_operators(city, PipelineConfig(), tmp_path_factory.mktemp("local")))
    tables: dict[tuple[str, int], list[str]] = {}
    reasons: Counter[tuple[str, str]] = Counter()
    windows = []
    step = 2000
    for i in range(0, len(lines), step):
        result = pipe.ingest_jsonl(b"\n".join(lines[i:i + step]))
        windows += result.windows
        for w in result.windows:
            for name in TABLES:
                if name in w.vitals:
                    tables[(name, w.window_end_ms)] = table_rows(w.vitals[name].to_dicts())
        reasons.update((m["reason_code"], m["raw"]) for m in map(json.loads, deadletter_messages(result)))
    url = _redis_url(redis_socket, 10)
    _seed_alert_state(url)

    async def page():
        svc = await AlertService.start(redis_url=url, city=city, window_s=300, deliver=False)
        try:
            for w in windows:
                await svc.on_window_result(w)
        finally:
            await svc.close()

    asyncio.run(page())
    return pipe.counters, tables, reasons, _notifications(url)


def _cli(args: list[str], cwd: Path, log: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "citybrain", *args], cwd=cwd, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})


class Workers(WorkerProcs):
    """``citybrain worker`` processes of one app sharing one --out directory (an app of its own
    publishes to topics of its own, so several apps can read one input topic side by side)."""

    def __init__(self, broker: str, out: Path, redis_url: str, partitions: int = PARTITIONS, app: str = "citybrain"):
        super().__init__(broker, out, partitions, app)
        self.redis_url = redis_url
        _seed_alert_state(redis_url)
        self.env = {"CITYBRAIN_REDIS_URL": redis_url, "CITYBRAIN_FAUST_PIECE_BYTES": str(PIECE_BYTES)}

    def start(self, i: int, env: dict | None = None, args: tuple[str, ...] = ()) -> None:
        self.procs[i] = _cli(["worker", "--broker", self.broker, "--out", str(self.out), "--partitions", str(self.partitions), "--id", str(i),
                              "--app-id", self.app, "--vitals-topic", self.topics[0], "--deadletter-topic", self.topics[1],
                              "--batch", "40", "--within", "0.3", *args], self.out, self.out / f"worker{i}.log", {**self.env, **(env or {})})


def _published(broker: str, topics: tuple[str, str]) -> tuple[dict, Counter]:
    from streams.faust_driver import bootstrap_of, decode_vitals_message

    tables: dict[tuple[str, int], list[str]] = {}
    for key, value in asyncio.run(read_topic(bootstrap_of(broker), topics[0])):
        msg = decode_vitals_message(value)  # columnar on the wire, rows here
        assert key.decode() == f"{msg['table']}:{msg['window_end_ms']}"
        rows = table_rows(msg["rows"])
        # At-least-once after a kill: a window published again carries the same rows under the same key.
        assert tables.setdefault((msg["table"], msg["window_end_ms"]), rows) == rows, f"{key} repeated with other rows"
    dead = Counter((m["reason_code"], m["raw"]) for m in (json.loads(v) for _, v in asyncio.run(read_topic(bootstrap_of(broker), topics[1]))))
    return tables, dead


def _all_in(n: int):
    return lambda s: s["records_in"] >= n and s["merged_all"] and s["merged_upto"] is not None


def _compare(local, status: dict, broker: str, n_lines: int, workers: Workers, crashed: bool = False) -> None:
    counters, ref_tables, ref_reasons, ref_notes = local
    topics = workers.topics
    got = {k: v for k, v in status["counters"].items() if k not in ("windows_closed", "ticks_closed")}
    assert got["records_in"] == n_lines
    assert got == {k: v for k, v in counters.items() if k != "windows_closed"}, "accounting differs from the local pipeline"
    tables, reasons = _published(broker, topics)
    if crashed:
        # Dead letters are at-least-once: a batch whose outputs went out before its checkpoint sends
        # them again. The same records, each at least as often as the local pipeline refused it.
        assert set(reasons) == set(ref_reasons) and all(reasons[k] >= n for k, n in ref_reasons.items())
    else:
        assert reasons == ref_reasons
    assert {"malformed", "duplicate", "late", "unknown_sensor", "out_of_range"} <= {code for code, _ in reasons}
    ends = sorted({end for (_, end) in tables} & {end for (_, end) in ref_tables})
    assert len(ends) >= MINUTES // 5 - 2, (len(ends), sorted({e for _, e in tables}))
    published = Counter(name for name, end in tables if end in ends)
    assert published["district"] == published["city"] == len(ends)
    assert published["anomaly"] > 0 and published["signal_plans"] > 0, published
    for name in TABLES:
        for end in ends:
            assert tables.get((name, end)) == ref_tables.get((name, end)), f"{name} differs for the window ending {end}"
    # Pages: the same notifications, idempotency key by key, each once (a window the merge replays
    # after a crash is skipped by the alert service), for every window both closed.
    notes = [n for n in _notifications(workers.redis_url) if int(n[4]) <= ends[-1]]
    expected = [n for n in ref_notes if int(n[4]) <= ends[-1]]
    assert expected, "the stretch pages nobody: nothing to compare"
    assert [k for k, n in Counter(n[0] for n in notes).items() if n > 1] == [], "a notification went out twice"
    assert sorted(notes) == sorted(expected), "notifications differ from the local pipeline's"


def test_one_two_and_three_workers_match_local_pipeline(broker, lines, local, tmp_path, redis_socket):
    # Three apps (consumer groups) of 1, 2 and 3 workers read the same input side by side: one
    # broker, one produce, and their group joins overlap instead of adding up.
    apps = {n: Workers(broker, tmp_path / f"app{n}", _redis_url(redis_socket, 10 + n), app=f"cb{n}") for n in (1, 2, 3)}
    try:
        produce(lines, tmp_path / "input.jsonl", broker, PARTITIONS)
        for n, workers in apps.items():
            for i in range(n):
                workers.start(i)
        for n, workers in apps.items():
            status = workers.wait(_all_in(len(lines)), f"every record in and merged ({n} workers)")
            _compare(local, status, broker, len(lines), workers)
    finally:
        for workers in apps.values():
            workers.stop_all()


def test_killed_workers_restarted_give_identical_results(broker, lines, local, tmp_path, redis_socket):
    """Two workers; worker 0 dies (exit 137, as under SIGKILL) right after its second batch's outputs
    went out and before its checkpoint — so those partials and dead letters are sent again after the
    restart —, is started again, and later worker 1 is killed with SIGKILL mid-stream and started
    again. The results are the local pipeline's; repeats carry the same rows under the same key."""
    workers = Workers(broker, tmp_path / "out", _redis_url(redis_socket, 14))
    try:
        produce(lines, tmp_path / "input.jsonl", broker, PARTITIONS)
        workers.start(0, env={"CITYBRAIN_FAUST_EXIT_AFTER_BATCH": "2"})
        workers.start(1)
        deadline = time.monotonic() + TIMEOUT_S
        while workers.procs[0].poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert workers.procs[0].returncode == 137, workers.logs()
        workers.start(0)
        workers.wait(lambda s: s["records_in"] >= len(lines) * 2 // 3, "two thirds in")
        workers.kill(1)  # SIGKILL mid-stream: its last offsets are not committed
        workers.start(1)
        status = workers.wait(_all_in(len(lines)), "every record in and merged after the restarts")
        _compare(local, status, broker, len(lines), workers, crashed=True)
        assert status["counters"]["records_in"] == len(lines), "a record was applied twice or lost"
        # The partials sent before the first crash came again, and the merge dropped them by tick.
        assert status["merge"]["counters"].get("ticks_repeated", 0) > 0, status["merge"]["counters"]
    finally:
        workers.stop_all()


def test_one_merge_and_two_partition_workers_match_local_pipeline(broker, lines, local, tmp_path, redis_socket):
    """The role split: worker 0 runs only the merge stage (``--role merge``, its tick work in a
    thread), workers 1 and 2 only the per-partition stage (``--role partitions``). Killed with
    SIGKILL mid-stream and started again, the merge worker resumes from its checkpoint: the same
    tables, accounting, dead letters and notifications as the local pipeline, no page twice."""
    workers = Workers(broker, tmp_path / "roles", _redis_url(redis_socket, 15), app="cbroles")
    try:
        produce(lines, tmp_path / "input.jsonl", broker, PARTITIONS)
        merge_args = ("--role", "merge", "--merge-thread")
        workers.start(0, args=merge_args)
        for i in (1, 2):
            workers.start(i, args=("--role", "partitions"))
        workers.wait(lambda s: s["merge"].get("worker_id") == 0 and s["merged_upto"] is not None and s["records_in"] >= len(lines) // 3,
                     "a third in and merged by the merge worker")
        workers.kill(0)
        workers.start(0, args=merge_args)
        status = workers.wait(_all_in(len(lines)), "every record in and merged (1 merge + 2 partition workers)")
        from streams.faust_state import stage_path

        # Only worker 0 subscribes to the partials, only workers 1 and 2 to the records.
        assert status["merge"]["worker_id"] == 0, "the merge ran on a --role partitions worker"
        owners = {json.loads(stage_path(workers.out, workers.app, p).with_suffix(".json").read_text())["worker_id"] for p in range(PARTITIONS)}
        assert owners <= {1, 2}, f"input partitions were read by workers {owners}"
        assert status["merge"]["close_latency_ms"]["n"] > 0, status["merge"]
        _compare(local, status, broker, len(lines), workers)
    finally:
        workers.stop_all()


def test_merge_thread_beside_partition_stages_matches_local_pipeline(broker, lines, local, tmp_path, redis_socket):
    """``--merge-thread`` with the default role: two workers that each run both stages, the merge's
    tick work in a thread while the same process's partition batches go on in the event loop. The
    worker holding the merge is killed with SIGKILL mid-stream (a thread may be half-way through a
    piece) and started again: the same tables, accounting and notifications as the local pipeline,
    no page twice."""
    workers = Workers(broker, tmp_path / "thread", _redis_url(redis_socket, 13), app="cbthread")
    try:
        produce(lines, tmp_path / "input.jsonl", broker, PARTITIONS)
        for i in (0, 1):
            workers.start(i, args=("--merge-thread",))
        status = workers.wait(lambda s: s["merge"].get("worker_id") in (0, 1) and s["merged_upto"] is not None
                              and s["records_in"] >= len(lines) // 3, "a third in and merged")
        holder = status["merge"]["worker_id"]
        workers.kill(holder)
        workers.start(holder, args=("--merge-thread",))
        status = workers.wait(_all_in(len(lines)), "every record in and merged (both stages per worker, merge in a thread)")
        # (no close-latency check here: a merge that had closed every window before the kill only
        # drops repeats after its restart, and the latency kept in memory starts empty)
        _compare(local, status, broker, len(lines), workers, crashed=True)
        assert status["counters"]["records_in"] == len(lines), "a record was applied twice or lost"
    finally:
        workers.stop_all()
