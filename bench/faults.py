"""Reliability bench: an operator's worst day, scenario by scenario, against an uninterrupted run.

    .venv/bin/python bench/faults.py [--hours 6] [--seed N] [--chunk-kb 256] [--skip config,restarts,clocks,redis,delivery]

A simulated stretch of the demo city is written as JSON lines (random seed unless given) and read
by the local driver (``streams.local.LocalDriver`` over a file source cut in ``--chunk-kb``
batches, a checkpoint after every batch). The peer, measured in the same run, is the same driver
reading the same file uninterrupted. Each scenario injects one fault, restarts when the fault
stopped the engine, and compares with the peer:

- ``input``: lines in the file (records);
- ``lost``: records the engine never accounted for (neither applied, dead-lettered nor late), plus
  history rows of the peer missing from the scenario's history;
- ``duplicated``: history rows beyond the peer's (a window written twice);
- ``crashed``: the engine could not finish (an exception escaped, or it could not restart).

Scenarios: ``sigterm mid-file`` (a stop request while reading, then a restart), ``crash after
history write`` (killed between writing history and saving the checkpoint, then a restart),
``truncated checkpoint`` and ``corrupted checkpoint`` (the latest checkpoint damaged after a
stop, then a restart), ``poison lines`` (a 2 KB line nesting 995 brackets, a whitespace-only line
and a two-object line mixed into the file), ``pickled checkpoint`` (a pickle that would write a
marker file if run; ``crashed`` is yes if it ran or if the engine died with a traceback instead of
refusing it).

A second table replays the same records with one sensor's clock wrong (30 min fast, 30 min slow,
one reading 50 min ahead) in 64 KB and 4 MB batches: records late or quarantined, and how many of
them belonged to *other* sensors (what a wrong clock must never cause).

A Redis table runs the alerts end to end (the shipped rules, one webhook subscriber on a real
receiver) while a real redis-server is SIGKILLed mid-run and started again, restarted empty (no
persistence), or unreachable at start, or while the engine itself is killed during an outage (Redis down
from 1/4 of the run, the engine killed at 1/2 with notifications spilled to disk, restarted from its
checkpoint once Redis is back), each on this tree and on a ``git archive`` of ``--before``
(the code before the alert journal) in a subprocess, same data: notifications lost and duplicated
against the same code's uninterrupted run, vital-sign history rows lost, and whether the engine
died (bench/faults_alerts.py). A delivery table runs bench/delivery.py's receiver outage and slow receiver against the
delivery module before durable delivery.

The history is compared row by row (every table, rows hashed over every column), so "same" means
bit-identical vital signs. Runs on the code in this tree; point ``PYTHONPATH`` at another checkout
to measure it on the same data.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("POLARS_MAX_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402


class Crash(Exception):
    """The fault injected at a stage boundary (the process would die there)."""


class _Marker:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def make_day(path: Path, hours: float, seed: int) -> int:
    from brain.city import demo_city_path, load_city
    from streams.sim import Simulator

    sim = Simulator(load_city(demo_city_path()), seed=seed)
    n = 0
    with path.open("wb") as fh:
        for chunk in sim.jsonl_batches(sim.start_ms + int(hours * 3_600_000), batch_s=3600):
            fh.write(chunk)
            n += chunk.count(b"\n")
    return n


def make_driver(city, path: Path, out: Path, chunk_bytes: int):
    from brain.pipeline import CityPipeline
    from streams.feeds import FileSource
    from streams.local import LocalDriver

    source = FileSource(path)
    source.replay.chunk_bytes = chunk_bytes
    return LocalDriver(CityPipeline(city), source, out, checkpoint_every_s=0.0, source_key=f"file:{path}")


def _accounted(driver) -> int:
    c = driver.pipeline.counters
    return int(c["applied"] + c["dead_lettered"] + c["late"])


def history_rows(out: Path) -> Counter:
    """Every history row as (table, hash of its columns in name order)."""
    rows: Counter = Counter()
    root = out / "history"
    for table in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        files = sorted(table.glob("*.parquet"))
        if not files:
            continue
        frame = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
        frame = frame.select(sorted(frame.columns))
        rows.update((table.name, h) for h in frame.hash_rows(seed=0).to_list())
    return rows


def run_scenario(name: str, city, path: Path, out: Path, chunk_bytes: int) -> tuple[int, bool, str]:
    """Runs one scenario to its end (restarting when the fault stopped it); returns (records
    accounted for, crashed, note)."""
    driver = make_driver(city, path, out, chunk_bytes)
    note = ""
    try:
        driver.resume()
        if name == "sigterm mid-file":
            batches = [0]

            def stop_after_three(_result):
                batches[0] += 1
                if batches[0] == 3:
                    driver.stop()  # what the SIGTERM handler of `citybrain run` calls

            driver.batch_handlers.append(stop_after_three)
            asyncio.run(driver.run())
        elif name == "crash after history write":
            # Checkpoints every third batch (as a wall-clock cadence would), the restart checkpoints
            # after every batch: the history files of the two runs are cut differently.
            save, calls, batches = driver.checkpoints.save, [0], [0]

            def crash_on_second(state):
                calls[0] += 1
                if calls[0] == 2:  # history of this checkpoint is on disk, the checkpoint is not
                    raise Crash()
                save(state)

            def every_third(_result):
                batches[0] += 1
                if batches[0] % 3 == 0:
                    driver.checkpoint()

            driver.checkpoint_every_s = float("inf")
            driver.checkpoints.save = crash_on_second
            driver.batch_handlers.append(every_third)
            try:
                asyncio.run(driver.run())
            except Crash:
                pass
        elif name in ("truncated checkpoint", "corrupted checkpoint"):
            driver.batch_handlers.append(lambda r, d=driver, n=[0]: (n.__setitem__(0, n[0] + 1), n[0] == 3 and d.stop()))
            asyncio.run(driver.run())
            ckpt = driver.checkpoints.path
            data = bytearray(ckpt.read_bytes())
            if name == "truncated checkpoint":
                data = data[: len(data) // 2]
            else:
                data[len(data) // 2] ^= 0xFF
            ckpt.write_bytes(bytes(data))
        elif name == "pickled checkpoint":
            marker = out / "pwned"
            (out / "checkpoint.bin").parent.mkdir(parents=True, exist_ok=True)
            (out / "checkpoint.bin").write_bytes(pickle.dumps(_Marker(str(marker))))
            try:
                make_driver(city, path, out, chunk_bytes).resume()
                note = "accepted"
            except ValueError as exc:  # a clear refusal
                note = f"refused: {str(exc)[:60]}"
            except Exception as exc:  # noqa: BLE001 - what the bench measures
                note = f"{type(exc).__name__}"
            ran = marker.exists()
            for p in out.glob("checkpoint.bin*"):
                p.unlink()
            driver = make_driver(city, path, out, chunk_bytes)
            asyncio.run(driver.run())
            return _accounted(driver), ran or not note.startswith("refused"), ("CODE RAN; " if ran else "") + note
        else:
            asyncio.run(driver.run())
            return _accounted(driver), False, note
        # the restart
        again = make_driver(city, path, out, chunk_bytes)
        again.resume()
        asyncio.run(again.run())
        return _accounted(again), False, note
    except Exception as exc:  # noqa: BLE001 - a crash is a result here
        return 0, True, f"{type(exc).__name__}: {str(exc)[:70]}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--chunk-kb", type=int, default=256)
    ap.add_argument("--before", default="bde55da~1",
                    help="git revision measured as 'before' in the Redis table (default: before the alert journal)")
    ap.add_argument("--delivery-before", default="769fdf2~1", help="the delivery module measured as 'before'")
    ap.add_argument("--redis-hours", type=float, default=3.0, help="simulated hours of the Redis scenarios")
    ap.add_argument("--skip", default="", help="comma list of tables to skip: config, restarts, clocks, redis, delivery")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    seed = random.randrange(10_000) if args.seed is None else args.seed
    from brain.city import demo_city_path, load_city

    city = load_city(demo_city_path())
    work = Path(tempfile.mkdtemp(prefix="cb-faults-"))
    try:
        day = work / "day.jsonl"
        n = make_day(day, args.hours, seed)
        poison = work / "poison.jsonl"
        lines = day.read_bytes().split(b"\n")
        good = lines[0]
        deep = good[:-1] + b',"x":' + b"[" * 995 + b"]" * 995 + b"}"
        mid = len(lines) // 2
        poison.write_bytes(b"\n".join(lines[:mid] + [deep, b"\r", good + good] + lines[mid:]))
        chunk = args.chunk_kb * 1024
        print(f"data: {n:,} lines, {args.hours:g} simulated hours of the demo city (seed {seed}), "
              f"read in {args.chunk_kb} KB batches, a checkpoint after each")
        if "config" not in skip:
            config_table()
        if "redis" not in skip:
            redis_day = work / "redis-day.jsonl"
            rn = make_day(redis_day, args.redis_hours, seed)
            print(f"Redis faults: alerts end to end (shipped rules, one webhook subscriber on 127.0.0.1, a real "
                  f"redis-server SIGKILLed) over {rn:,} lines ({args.redis_hours:g} h); lost/duplicated count "
                  f"notifications against the same code's uninterrupted run; history lost = vital-sign rows")
            from faults_alerts import redis_table

            redis_table(redis_day, chunk, args.before)
        if "delivery" not in skip:
            from faults_alerts import delivery_table

            delivery_table(args.delivery_before)
        if "restarts" in skip:
            if "clocks" not in skip:
                clock_table(city, day, n)
            return 0
        t0 = time.monotonic()
        peer = make_driver(city, day, work / "peer", chunk)
        asyncio.run(peer.run())
        ref_rows, ref_acc = history_rows(work / "peer"), _accounted(peer)
        print(f"peer (uninterrupted): {ref_acc:,} records accounted, {sum(ref_rows.values()):,} history rows, "
              f"{peer.stats.windows} windows, {time.monotonic() - t0:.1f} s\n")
        print(f"{'scenario':<28}| {'input':>8} | {'lost':>6} | {'duplicated':>10} | crashed | note")
        print("-" * 100)
        for name in ("sigterm mid-file", "crash after history write", "truncated checkpoint", "corrupted checkpoint",
                     "pickled checkpoint", "poison lines"):
            out = work / name.replace(" ", "-")
            src = poison if name == "poison lines" else day
            accounted, crashed, note = run_scenario(name, city, src, out, chunk)
            rows = history_rows(out)
            want = n + 2 if name == "poison lines" else n  # the deep and the two-object lines (a blank line is no record)
            lost = max(want - accounted, 0) + sum((ref_rows - rows).values())
            duplicated = sum((rows - ref_rows).values())
            print(f"{name:<28}| {want:>8,} | {lost:>6,} | {duplicated:>10,} | {'yes' if crashed else 'no':>7} | {note}")
        print()
        if "clocks" not in skip:
            clock_table(city, day, n)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def config_table() -> None:
    """Config, rules and signal plans an operator (or an attacker with write access) can hand the engine: each
    must be refused with a message naming what is wrong (or planned safely), never crash it or emit an unsafe
    plan. The issue's cases: a rule summary ``{sensor_id:>300000000}``, a GeoJSON nested 100k deep, and
    corridors asking for yellow = all-red = 0 s, a yellow of 0.000001 s, a fixed 100,000 s cycle and a fixed
    400 s cycle on a corridor bounded 60-120 s."""
    import subprocess

    from brain.city import CityError, demo_city_path, load_city
    from brain.greenwave.limits import DEFAULT_LIMITS as LIM
    from brain.greenwave.model import CorridorSpec, IntersectionSpec, PhaseSpec
    from brain.greenwave.optimizer import optimize_corridor

    print(f"{'config / plan fault':<41}| {'outcome':<9}| crashed | note")
    print("-" * 100)
    tmp = Path(tempfile.mkdtemp(prefix="cb-config-"))
    try:
        (tmp / "rules").mkdir()
        (tmp / "rules" / "evil.yaml").write_text(
            "pack: p\nrules:\n  - id: wide\n    kind: threshold\n    table: segment_traffic\n    value: tti\n"
            "    op: \">=\"\n    threshold: 0\n    severity: yellow\n    labels_from: [segment_id]\n"
            "    summary: \"{segment_id:>300000000}\"\n")
        proc = subprocess.run([sys.executable, "-m", "citybrain", "rules", "check", str(tmp / "rules")],
                              capture_output=True, text=True, timeout=300)
        said = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if "300000000" in ln] or ["?"]
        print(f"{'rule summary {sensor_id:>300000000}':<41}| {'refused' if proc.returncode else 'ACCEPTED':<9}| "
              f"{'yes' if 'Traceback' in proc.stderr else 'no':>7} | {said[-1][:70]}")
        shutil.copytree(demo_city_path(), tmp / "city")
        (tmp / "city" / "districts.geojson").write_text('{"type":"FeatureCollection","features":' + "[" * 100_000
                                                        + "]" * 100_000 + "}")
        try:
            load_city(tmp / "city")
            outcome, crashed, note = "ACCEPTED", False, ""
        except CityError as exc:
            outcome, crashed, note = "refused", False, str(exc).splitlines()[-1]
        except Exception as exc:  # noqa: BLE001 - what the bench measures
            outcome, crashed, note = "-", True, f"{type(exc).__name__}"
        print(f"{'districts.geojson nested 100k deep':<41}| {outcome:<9}| {'yes' if crashed else 'no':>7} | {note[:70]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def corridor(yellow: float, all_red: float, fixed: float | None, lo: float = 30.0, hi: float = 180.0):
        ph = [PhaseSpec(name="EW", min_green_s=15, coordinated=True, yellow_s=yellow, all_red_s=all_red),
              PhaseSpec(name="NS", min_green_s=15, yellow_s=yellow, all_red_s=all_red)]
        return CorridorSpec(id="C", cycle_s=fixed, cycle_min_s=lo, cycle_max_s=hi,
                            intersections=[IntersectionSpec(id="A", position_m=0, phases=ph),
                                           IntersectionSpec(id="B", position_m=300, phases=ph)])

    def plan_outcome(sp, q) -> None:
        try:
            plan = optimize_corridor(sp)
            unsafe = [p for it in plan.intersections for p in it.phases
                      if p.yellow_s < LIM.yellow_min_s or p.all_red_s < LIM.all_red_min_s]
            bad_cycle = not (LIM.cycle_min_s <= plan.cycle_s <= LIM.cycle_max_s and sp.cycle_min_s - 1e-6 <= plan.cycle_s
                             <= sp.cycle_max_s + 1e-6)
            q.put(("UNSAFE" if unsafe or bad_cycle else "safe", False, f"cycle {plan.cycle_s:g} s"))
        except ValueError as exc:  # UnsafePlanError is a ValueError: refused with a reason
            q.put(("refused", False, str(exc).splitlines()[0]))
        except Exception as exc:  # noqa: BLE001 - what the bench measures
            q.put(("-", True, type(exc).__name__))

    import multiprocessing as mp

    ctx = mp.get_context("fork")
    for name, sp in (("plan: yellow 0 s, all-red 0 s", corridor(0.0, 0.0, None)),
                     ("plan: yellow 0.000001 s", corridor(1e-6, 2.0, None)),
                     ("plan: fixed cycle 100,000 s", corridor(3.0, 2.0, 100_000.0)),
                     ("plan: fixed 400 s on a 60-120 s corridor", corridor(3.0, 2.0, 400.0, 60.0, 120.0))):
        q = ctx.Queue()
        proc = ctx.Process(target=plan_outcome, args=(sp, q))  # a plan that never comes is a hang: bounded here
        proc.start()
        proc.join(PLAN_TIMEOUT_S)
        if proc.is_alive():
            proc.kill()
            proc.join()
            outcome, crashed, note = "HUNG", True, f"no answer in {PLAN_TIMEOUT_S:g} s (the engine's re-planner would stall)"
        else:
            outcome, crashed, note = q.get() if not q.empty() else ("-", True, f"exit {proc.exitcode}")
        print(f"{name:<41}| {outcome:<9}| {'yes' if crashed else 'no':>7} | {note[:70]}")
    print()


PLAN_TIMEOUT_S = 60.0


def _shift(lines: list[bytes], sensor: bytes, offset_ms: int, first_only: bool) -> bytes:
    import msgspec

    out, done = [], False
    for line in lines:
        if not done and b'"sensor_id":"' + sensor + b'"' in line:
            rec = msgspec.json.decode(line)
            rec["ts_ms"] += offset_ms
            line = msgspec.json.encode(rec)
            done = first_only
        out.append(line)
    return b"\n".join(out) + b"\n"


def clock_table(city, day: Path, n: int) -> None:
    """Wrong clocks: records sent to late or quarantine, and how many of them were other sensors'."""
    import msgspec

    from brain.pipeline import CityPipeline

    lines = day.read_bytes().split(b"\n")[:-1]
    cases = [("HT-02 clock 30 min fast", b"HT-02", 1_800_000, False), ("HT-02 clock 30 min slow", b"HT-02", -1_800_000, False),
             ("one reading 50 min ahead", b"LP-JF-01E", 3_000_000, True)]
    print(f"{'wrong clock':<28}| {'batches':>7} | {'late':>7} | {'too far ahead':>13} | of them other sensors'")
    print("-" * 90)
    for name, sensor, offset, first_only in cases:
        buf = _shift(lines, sensor, offset, first_only)
        for chunk in (64 << 10, 4 << 20):
            pipe = CityPipeline(city)
            others = late = ahead = 0
            i = 0
            while i < len(buf):
                j = buf.rfind(b"\n", i, i + chunk) + 1 or len(buf)
                step = pipe.ingest_jsonl(buf[i:j])
                i = j
                refused = [r for r in step.late["raw"].to_list()]
                late += len(refused)
                far = step.dead.filter(step.dead["reason_code"] == "too_far_ahead")["raw"].to_list()
                ahead += len(far)
                others += sum(1 for raw in refused + far if msgspec.json.decode(raw)["sensor_id"] != sensor.decode())
            pipe.flush()
            print(f"{name:<28}| {chunk >> 10:>4} KB | {late:>7,} | {ahead:>13,} | {others:,} ({100 * others / n:.1f} % of all records)")


if __name__ == "__main__":
    sys.exit(main())
