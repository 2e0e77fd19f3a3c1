"""Anomaly detection quality against ground truth: CityBrain's default detector vs River's
HalfSpaceTrees and a plain rolling z-score, on the same streams, in the same run.

Two sources of streams:

1. ``generator`` — :mod:`models.simhistory` (documented: daily x weekly seasonal profiles + noise
   for seven kinds of city series, one injected scenario or fault per stream with its exact extent):
   14 days of 5-minute data per stream, the first 7 are warm-up, the last 7 judged.
2. ``simulator`` — the city simulator (``streams.sim``, demo city, if importable): 3 clean days of
   warm-up then 2 judged days with accidents, pollution episodes, water-main bursts and sensor
   faults placed by the simulator; every numeric field of every sensor named in the ground truth
   is a stream, and a same-seed run without scenarios gives the clean streams.

Judging: consecutive alarm points (score >= threshold, gaps up to 15 min) form one alarm. An event
is detected if an alarm point on one of its streams falls inside it or up to 30 min after it.
Precision = alarms touching an event / all alarms on event streams (judged period); recall =
detected events / events; TTD = first alarm point - event start (median, minutes); false alarms per
clean stream-day = alarms on clean streams / (streams x judged days).

Thresholds: CityBrain uses its documented 0.999 and a strict 0.99999. Each peer's threshold is set
on clean calibration streams so that it raises as many false alarms per stream-day there as
CityBrain does at that threshold: the peers are compared at the same false-alarm budget.

``CityBrain+peer`` is the same detector given what ``citybrain run`` gives it for a traffic
detector's speed: its segment's probe speed as a peer reference (one per probe reading), so its
drift statistic is a ramp against the peer (see brain.kernels.faults); on streams without a peer
(all generator streams, every non-speed field) it is CityBrain itself. It keeps CityBrain's thresholds.

Usage: ``.venv/bin/python bench/anomaly_quality.py [--seeds 2] [--no-sim] [--sim-days 2]``
"""
from __future__ import annotations

import argparse
import math
import time
from collections import defaultdict, deque
from dataclasses import dataclass

import numpy as np

from brain.anomaly import BatchDetector, warm_up
from models.simhistory import EVENT_TYPES, KINDS, make_series

GAP_MS = 15 * 60_000
GRACE_MS = 30 * 60_000
DAY_MS = 86_400_000


@dataclass
class Stream:
    ts_ms: np.ndarray
    values: np.ndarray
    judge_from_ms: int
    events: list  # [(start_ms, end_ms, type, event_id)]
    peers: np.ndarray | None = None  # a peer reference of the same quantity (NaN where none), if any


# --- detectors: each maps a stream to one score per point, learning as it goes -----------------
def citybrain_scores(ts_ms, values, peers=None):
    return BatchDetector(1).score_learn_many(np.zeros(ts_ms.size, dtype=np.int64), ts_ms, values)


def citybrain_peer_scores(ts_ms, values, peers=None):
    return BatchDetector(1).score_learn_many(np.zeros(ts_ms.size, dtype=np.int64), ts_ms, values, peers=peers)


def zscore_scores(ts_ms, values, peers=None, window: int = 48):
    """Plain rolling z-score |x - mean| / std over the last ``window`` points (NaN skipped)."""
    buf: deque = deque(maxlen=window)
    out = np.zeros(values.size)
    for i, v in enumerate(values.tolist()):
        if not math.isfinite(v):
            continue
        if len(buf) >= 10:
            m = sum(buf) / len(buf)
            sd = math.sqrt(max(sum((b - m) ** 2 for b in buf) / (len(buf) - 1), 1e-12))
            out[i] = abs(v - m) / sd
        buf.append(v)
    return out


def hst_scores(ts_ms, values, peers=None):
    """River HalfSpaceTrees behind a MinMaxScaler (its documented use): score, then learn."""
    from river import anomaly, compose, preprocessing

    model = compose.Pipeline(preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(n_trees=10, height=8, window_size=250, seed=42))
    out = np.zeros(values.size)
    for i, v in enumerate(values.tolist()):
        if not math.isfinite(v):
            continue
        x = {"x": v}
        out[i] = model.score_one(x)
        model.learn_one(x)
    return out


DETECTORS = {"CityBrain": citybrain_scores, "CityBrain+peer": citybrain_peer_scores, "River HST": hst_scores,
             "rolling z": zscore_scores}
#: CityBrain's own detectors: judged at its documented thresholds (the others get a matched budget)
OWN = ("CityBrain", "CityBrain+peer")


# --- judging ------------------------------------------------------------------------------------
def alarm_runs(ts: np.ndarray) -> list[tuple[int, int]]:
    """Alarm points' times merged across gaps up to GAP_MS: [(first_ms, last_ms)]."""
    if ts.size == 0:
        return []
    out, start, prev = [], int(ts[0]), int(ts[0])
    for t in ts[1:].tolist():
        if t - prev > GAP_MS:
            out.append((start, prev))
            start = t
        prev = t
    out.append((start, prev))
    return out


def judge_stream(s: Stream, scores: np.ndarray, thr: float):
    """(alarms, alarms touching an event, {event_id: first alarm ms or None})."""
    keep = (scores >= thr) & (s.ts_ms >= s.judge_from_ms)
    at = s.ts_ms[keep]
    runs = alarm_runs(at)
    touching = sum(any(a <= e + GRACE_MS and b >= st for st, e, _, _ in s.events) for a, b in runs)
    first = {}
    for st, e, _, eid in s.events:
        hit = at[(at >= st) & (at <= e + GRACE_MS)]
        first[eid] = int(hit[0]) if hit.size else None
    return len(runs), touching, first


def fa_rate(streams, scores, thr) -> float:
    days = sum((s.ts_ms[-1] - s.judge_from_ms) / DAY_MS for s in streams)
    return sum(judge_stream(s, sc, thr)[0] for s, sc in zip(streams, scores)) / max(days, 1e-9)


def evaluate(title, calib, clean, evented, event_types, detectors, cb_thresholds):
    scores = {}
    for name, fn in detectors.items():
        t = time.perf_counter()
        scores[name] = {g: [fn(s.ts_ms, s.values, s.peers) for s in ss] for g, ss in (("calib", calib), ("clean", clean), ("events", evented))}
        print(f"  {title}: scored {sum(len(s.values) for s in calib + clean + evented):,} points with {name} in {time.perf_counter() - t:.0f} s")
    names = list(detectors)
    for cb_thr in cb_thresholds:
        budget = fa_rate(calib, scores["CityBrain"]["calib"], cb_thr)
        thresholds = {n: cb_thr for n in OWN}
        for name in [n for n in names if n not in OWN]:
            allc = np.concatenate([sc[s.ts_ms >= s.judge_from_ms] for s, sc in zip(calib, scores[name]["calib"])])
            cand = np.unique(np.quantile(allc, 1.0 - np.geomspace(0.5, 1e-7, 300)))
            thresholds[name] = float(cand[-1]) + 1e-9
            for c in cand:  # the lowest threshold within CityBrain's false-alarm budget
                if fa_rate(calib, scores[name]["calib"], c) <= budget:
                    thresholds[name] = float(c)
                    break
        table = {}
        summary = {}
        for name in names:
            thr = thresholds[name]
            first_by_event: dict = {}
            etype_of = {}
            n_al = n_touch = 0
            for s, sc in zip(evented, scores[name]["events"]):
                na, nt, first = judge_stream(s, sc, thr)
                n_al += na
                n_touch += nt
                for st, e, et, eid in s.events:
                    etype_of[eid] = (et, st)
                    f = first[eid]
                    old = first_by_event.get(eid)
                    first_by_event[eid] = f if old is None else (old if f is None else min(old, f))
            per = defaultdict(lambda: [0, 0, []])
            for eid, (et, st) in etype_of.items():
                per[et][0] += 1
                f = first_by_event[eid]
                if f is not None:
                    per[et][1] += 1
                    per[et][2].append((f - st) / 60_000.0)
            table[name] = {et: (h / n, float(np.median(t)) if t else None, n) for et, (n, h, t) in per.items()}
            summary[name] = (n_touch / n_al if n_al else float("nan"), fa_rate(clean, scores[name]["clean"], thr), thr)
        print(f"\n### {title} — CityBrain threshold {cb_thr} (peers matched to its false-alarm rate on calibration streams)\n")
        print("| scenario / fault | events | " + " | ".join(f"{n} recall | {n} TTD min" for n in names) + " |")
        print("|---|---|" + "---|---|" * len(names))
        for et in event_types:
            if et not in table["CityBrain"]:
                continue
            cells = []
            for n in names:
                r, ttd, _ = table[n][et]
                cells += [f"{r:.2f}", "-" if ttd is None else f"{ttd:.0f}"]
            print(f"| {et} | {table['CityBrain'][et][2]} | " + " | ".join(cells) + " |")
        mean_r = {n: np.mean([v[0] for v in table[n].values()]) for n in names}
        print("| **mean recall** | | " + " | ".join(f"**{mean_r[n]:.2f}** | " for n in names) + "|")
        print("| precision | | " + " | ".join(f"{summary[n][0]:.2f} | " for n in names) + "|")
        print("| false alarms per clean stream-day | | " + " | ".join(f"{summary[n][1]:.3f} | " for n in names) + "|")
        print("| threshold | | " + " | ".join(f"{summary[n][2]:.4g} | " for n in names) + "|")
        print("\nCityBrain / peer at equal false-alarm budget: " + ", ".join(
            f"recall x{mean_r['CityBrain'] / mean_r[n]:.2f}, precision x{summary['CityBrain'][0] / summary[n][0]:.2f} vs {n}"
            if mean_r[n] > 0 and summary[n][0] > 0 else f"{n} detected nothing" for n in names if n not in OWN))
        if "CityBrain+peer" in table:
            def cell(name, et):
                r, ttd, _ = table[name][et]
                return f"{r:.2f}/" + ("-" if ttd is None else f"{ttd:.0f}")

            print("per event type, recall/TTD min, CityBrain -> CityBrain+peer: " + "; ".join(
                f"{et} {cell('CityBrain', et)} -> {cell('CityBrain+peer', et)}" for et in event_types if et in table["CityBrain"]))


# --- stream sources -----------------------------------------------------------------------------
def generator_streams(seeds, with_events: bool) -> list[Stream]:
    out = []
    for kind in KINDS:
        for seed in seeds:
            if with_events:
                for j, et in enumerate(EVENT_TYPES):
                    day = 7.2 + (seed * 7 + j) % 6 + 0.37 * ((seed + j) % 3)
                    s = make_series(kind, 14, 300, seed=seed * 100 + j, events=[(et, day)])
                    a, b, _ = s.events[0]
                    ev = [(int(s.ts_ms[a]), int(s.ts_ms[min(b, s.ts_ms.size - 1)]), et, f"{kind}-{seed}-{et}")]
                    out.append(Stream(s.ts_ms, s.values, int(s.ts_ms[0]) + 7 * DAY_MS, ev))
            else:
                s = make_series(kind, 14, 300, seed=seed * 100 + 99)
                out.append(Stream(s.ts_ms, s.values, int(s.ts_ms[0]) + 7 * DAY_MS, []))
    return out


def simulator_streams(seed: int, warm_days: int, judged_days: int, n_clean: int):
    """(calib, clean, evented, event types) from the city simulator, or None if it is unavailable."""
    try:
        import polars as pl

        from brain.city import demo_city_path, load_city
        from streams.sim import FAULT_TYPES, Scenario, Simulator
        from streams.sim import EVENT_TYPES as SIM_EVENTS
    except ImportError as exc:
        print(f"  simulator unavailable ({exc}); skipping the simulator streams")
        return None
    city = load_city(demo_city_path())
    probe = Simulator(city, seed=seed, scenarios=[], faults=[])
    t0 = probe.start_ms + warm_days * DAY_MS
    rng = np.random.default_rng(seed)
    plan = []
    for d in range(judged_days):
        for et, n, dur in (("accident", 3, 2400), ("pollution_episode", 1, 6 * 3600), ("water_main_burst", 1, 3 * 3600),
                           *((f, 1, 3 * 3600) for f in FAULT_TYPES)):
            for _ in range(n):
                start = t0 + d * DAY_MS + int(rng.uniform(1, 20) * 3_600_000)
                plan.append(Scenario(type=et, start_ms=start, duration_s=dur))
    hours = (warm_days + judged_days) * 24
    ev_sim = Simulator(city, seed=seed, scenarios=plan, faults=[])
    frames_ev = ev_sim.run(hours)
    truth = ev_sim.ground_truth
    frames_clean = Simulator(city, seed=seed, scenarios=[], faults=[]).run(hours)

    numeric = (pl.Float64, pl.Float32, pl.Int64, pl.Int32)
    from brain.anomaly import DetectorPeers

    city_peers = DetectorPeers(city)

    def probe_kmh(frames):
        """Per segment: (ts, probe speed) from the probe travel times, as DetectorPeers computes it."""
        pr = frames.get("probe")
        if pr is None:
            return {}
        seg_of = {s.id: s.segment for s in city.sensors}
        pr = pr.with_columns(pl.col("sensor_id").replace_strict(seg_of, default=None).alias("segment_id")).filter(
            pl.col("segment_id").is_in(list(city_peers.segment_length_m)) & (pl.col("travel_time_s") > 0))
        pr = pr.with_columns((3.6 * pl.col("segment_id").replace_strict(city_peers.segment_length_m, return_dtype=pl.Float64)
                              / pl.col("travel_time_s")).alias("kmh")).sort("ts_ms")
        return {seg: g.select("ts_ms", "kmh") for (seg,), g in pr.group_by(["segment_id"], maintain_order=True)}

    def peers_for(sid, ts, probes):
        """The detector reading just after each probe reading gets it as its peer (one peer per probe
        reading: repeating it on every detector reading would make the peer noise look smaller than it is)."""
        if city_peers.kind.get(sid) != "probe" or city_peers.segment_of[sid] not in probes:
            return None
        d = pl.DataFrame({"ts_ms": ts}).with_row_index("i")
        j = d.join_asof(probes[city_peers.segment_of[sid]], on="ts_ms", strategy="backward", tolerance=59_999)
        return j.sort("i")["kmh"].cast(pl.Float64).fill_null(np.nan).to_numpy()

    def streams_of(frames, wanted):
        probes = probe_kmh(frames)
        out = {}
        for kind in ("traffic", "probe", "air", "noise", "utility", "hazard", "water_quality", "weather"):
            df = frames.get(kind)
            if df is None:
                continue
            if wanted is not None:
                df = df.filter(pl.col("sensor_id").is_in(list(wanted)))
            fields = [c for c, t in df.schema.items() if c not in ("sensor_id", "ts_ms", "interval_s", "samples") and t in numeric]
            for (sid,), g in df.sort("ts_ms").group_by(["sensor_id"], maintain_order=True):
                for f in fields:
                    v = g[f].cast(pl.Float64).to_numpy()
                    if np.isfinite(v).sum() > 100:
                        ts = g["ts_ms"].to_numpy().astype(np.int64)
                        peers = peers_for(sid, ts, probes) if kind == "traffic" and f == "speed_kmh" else None
                        out[(sid, f)] = (ts, np.nan_to_num(v, nan=np.nan), peers)
        return out

    involved = {s for ids in truth["sensor_ids"].to_list() for s in ids}
    ev_streams = streams_of(frames_ev, involved)
    evented = []
    for (sid, f), (ts, v, peers) in ev_streams.items():
        evs = [(r["start_ms"], r["end_ms"], r["type"], r["scenario_id"]) for r in truth.iter_rows(named=True) if sid in r["sensor_ids"]]
        evented.append(Stream(ts, v, t0, evs, peers))
    all_clean = streams_of(frames_clean, None)
    keys = sorted(all_clean)
    pick = np.random.default_rng(seed + 1).permutation(len(keys))
    clean_keys = [keys[i] for i in pick[:n_clean]]
    calib_keys = [keys[i] for i in pick[n_clean:2 * n_clean]]
    clean = [Stream(*all_clean[k][:2], t0, [], all_clean[k][2]) for k in clean_keys]
    calib = [Stream(*all_clean[k][:2], t0, [], all_clean[k][2]) for k in calib_keys]
    detector_speed = [Stream(*v[:2], t0, [], v[2]) for (sid, f), v in sorted(all_clean.items()) if v[2] is not None]
    return (calib, clean, evented, tuple(SIM_EVENTS) + tuple(FAULT_TYPES)), detector_speed


def detector_speed_false_alarms(streams: list[Stream], thresholds) -> None:
    """What the sensor-fault rule sees on clean days: every traffic detector's speed, with and without its peer."""
    days = sum((s.ts_ms[-1] - s.judge_from_ms) / DAY_MS for s in streams)
    print(f"\n### simulator: all {len(streams)} clean traffic-detector speed streams ({days:.0f} stream-days judged)\n")
    print("| detector | threshold | alarms per stream-day | of which explained as drift |")
    print("|---|---|---|---|")
    for name, use_peer in (("CityBrain", False), ("CityBrain+peer", True)):
        res = [BatchDetector(1).explain_learn_many(np.zeros(s.ts_ms.size, dtype=np.int64), s.ts_ms, s.values,
                                             peers=s.peers if use_peer else None) for s in streams]
        for thr in thresholds:
            n_all = n_drift = 0
            for s, r in zip(streams, res):
                judged = s.ts_ms >= s.judge_from_ms
                n_all += len(alarm_runs(s.ts_ms[judged & (r["score"] >= thr)]))
                n_drift += len(alarm_runs(s.ts_ms[judged & (r["score"] >= thr) & (r["reason"] == "drift")]))
            print(f"| {name} | {thr} | {n_all / days:.3f} | {n_drift / days:.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=2, help="generator: event streams per kind and type (default 2)")
    ap.add_argument("--no-sim", action="store_true", help="skip the city-simulator streams")
    ap.add_argument("--sim-days", type=int, default=2, help="simulator: judged days (default 2, after 3 warm-up days)")
    ap.add_argument("--sim-clean", type=int, default=40, help="simulator: clean streams sampled for false alarms (default 40)")
    args = ap.parse_args()
    print(f"warm_up(): {warm_up() * 1000:.0f} ms")
    t0 = time.perf_counter()
    thresholds = (0.999, 0.99999)
    calib = generator_streams(range(1000, 1002), with_events=False)
    clean = generator_streams(range(1, 1 + args.seeds), with_events=False)
    evented = generator_streams(range(1, 1 + args.seeds), with_events=True)
    evaluate("generator streams", calib, clean, evented, EVENT_TYPES, DETECTORS, thresholds)
    if not args.no_sim:
        sim = simulator_streams(seed=7, warm_days=3, judged_days=args.sim_days, n_clean=args.sim_clean)
        if sim is not None:
            evaluate("simulator streams", *sim[0], DETECTORS, thresholds)
            detector_speed_false_alarms(sim[1], thresholds)
    print(f"\ntotal time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
