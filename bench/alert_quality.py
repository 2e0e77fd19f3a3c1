"""Alert quality against ground truth: simulated days with injected scenarios, and a clean day.

For every injected scenario (accident, pollution episode, water-main burst, sensor faults) the
whole chain runs as in ``citybrain run`` (simulator → CityPipeline → vital signs → default rule
packs → alert pipeline) and we report, per scenario:

* alerted: did any subscriber get a firing notification about it (matching place, in time)?
* time to first notification (stream minutes after the scenario started);
* time to the first *actionable* notification (a page: reason alert or escalation);
* actionable notifications per subscriber that was notified (target: 1 per real incident), and
  updates per subscriber (follow-ups in the same group: more alerts of the incident, a worse
  level, resolutions);
* two peers measured in the same run on the same rule candidates: "prev", the same pipeline as it
  was configured before incident correlation (groups per district, no correlation, no daily digest
  of expected congestion), and "peer", a rule engine without dedup, inhibition and grouping (one
  message per alert activation per matching subscriber).

On the clean day (no scenarios, no faults; background incidents and grid cases still happen, as in
a real city) the notifications are broken down per subscriber and rule: what pages, what is an
update, what waits for the daily digest (expected rush-hour congestion), with both peers.

Run: ``.venv/bin/python bench/alert_quality.py [--hours 24] [--seed 0]`` (several minutes: the
whole vital-sign chain runs for 2 x ``--hours`` of stream time).

**Generalisation** (``--seeds N``, see ``bench/alert_generalise.py``): N randomised days (random
seeds unless ``--seed`` is given), each with every scenario type at random places and hours and
sensor faults on several sensor families, the engine started cold at local midnight, plus a clean
span per seed; reports recall per type, time to first page, pages per subscriber per scenario and
false pages per clean day.
"""
from __future__ import annotations

import argparse

import msgspec
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brain.alerts.pipeline import AlertPipeline  # noqa: E402
from brain.alerts.routing import Router, Subscription  # noqa: E402
from brain.alerts.rules import RuleEngine  # noqa: E402
from brain.city import demo_city_path, load_city  # noqa: E402
from brain.pipeline import CityPipeline, PipelineConfig  # noqa: E402
from streams.alerts.service import window_tables  # noqa: E402
from streams.anomaly_operator import maybe_anomaly_operator  # noqa: E402
from streams.fault_operator import fault_operator  # noqa: E402
from streams.sim import Simulator  # noqa: E402
from streams.sim.scenarios import Scenario  # noqa: E402

H = 3_600_000
WITH_FAULT_OPERATOR = True  # --without-fault-operator measures the engine as it was before it
GRACE_MS = 30 * 60_000
# Current-state tables (incidents, cases, outages) are read as of the end of the batch being
# ingested, so a window can already show an incident reported up to one 5-minute batch after it:
# a notification stamped up to one window before the scenario's start is about the scenario.
EARLY_MS = 5 * 60_000

SUBSCRIBERS = [
    # the traffic police take road incidents (traffic_accident) and traffic alerts, not every medical or fire call
    {"id": "traffic-police", "department": "交警 Traffic police", "categories": ["traffic", "emergency"], "min_severity": "yellow",
     "matchers": ["type=~|traffic_accident"]},
    {"id": "ecology", "department": "生态环境局 Ecology", "categories": ["environment"], "min_severity": "yellow"},
    {"id": "water-gas-power", "department": "公用事业 Utilities", "categories": ["utilities"], "min_severity": "yellow"},
    {"id": "sensor-maintenance", "department": "运维 Sensor maintenance", "categories": ["sensor_health", "anomaly"],
     "min_severity": "blue"},
    {"id": "emergency-mgmt", "department": "应急管理局 Emergency management", "categories": ["emergency"], "min_severity": "orange"},
    {"id": "city-command", "department": "城运中心 City command", "min_severity": "orange", "tier": "district"},
]


def subscriptions(group_by: tuple[str, ...] = ("incident",), reopen_within: str = "1h") -> list[Subscription]:
    base = {"group_by": list(group_by), "group_wait": "1m", "group_interval": "10m", "repeat_interval": "12h",
            "reopen_within": reopen_within, "channel": {"type": "log"}}
    return [Subscription.from_dict({**base, **s}) for s in SUBSCRIBERS]


def scenario_day(start_ms: int) -> list[Scenario]:
    at = lambda h: start_ms + int(h * H)  # noqa: E731
    return [
        Scenario(type="sensor_dropout", start_ms=at(1), duration_s=4 * 3600, scenario_id="dropout-1"),
        Scenario(type="accident", start_ms=at(7.75), duration_s=45 * 60, scenario_id="accident-am"),
        Scenario(type="pollution_episode", start_ms=at(9), duration_s=8 * 3600, scenario_id="pollution-1"),
        Scenario(type="water_main_burst", start_ms=at(13), duration_s=3 * 3600, scenario_id="water-main-1"),
        Scenario(type="sensor_stuck", start_ms=at(15), duration_s=3 * 3600, scenario_id="stuck-1"),
        Scenario(type="accident", start_ms=at(18), duration_s=40 * 60, scenario_id="accident-pm"),
        Scenario(type="sensor_drift", start_ms=at(19), duration_s=4 * 3600, scenario_id="drift-1"),
    ]


def run_day(city, seed: int, start_ms: int | None, hours: float, scenarios, faults):
    """Feed one simulated span through the chain; returns (notifications, ground truth, sim start, stats)."""
    sim = Simulator(city, seed=seed, start_ms=start_ms, scenarios=scenarios, faults=faults)
    cfg = PipelineConfig()
    anomaly = maybe_anomaly_operator(city, cfg)  # as citybrain run wires it (None while not available)
    ops = [anomaly] if anomaly is not None else []
    faults_op = fault_operator(city) if WITH_FAULT_OPERATOR else None
    if faults_op is not None:
        ops.append(faults_op)
    pipe = CityPipeline(city, cfg, window_operators=ops)
    engine = RuleEngine.from_path(city=city)
    alerts = AlertPipeline(subscriptions(), engine.inhibit_rules, correlate_rules=engine.correlate_rules,
                           tick=cfg.window_s)
    # the previous configuration, on the same candidates: district groups, no correlation, no digest
    prev = AlertPipeline(subscriptions(("district",), reopen_within="0s"), engine.inhibit_rules, correlate_rules=[])
    notes, prev_notes, activations = [], [], []
    t_rules = t_chain = 0.0
    windows = 0
    until = sim.start_ms + int(hours * H)
    t0 = time.perf_counter()
    for batch in sim.batches(until, batch_s=300):
        res = pipe.ingest_frames(batch.frames)
        if faults_op is not None:  # as citybrain run does (a batch handler of the driver)
            faults_op.observe_rejected(res.dead)
        res.windows.extend(pipe.advance_to(batch.end_ms).windows)
        for w in res.windows:
            windows += 1
            t = time.perf_counter()
            cands = engine.evaluate(window_tables(w), w.window_end_ms)
            plain = [msgspec.structs.replace(c, digest_ms=0) for c in cands]
            out = alerts.process(cands, w.window_end_ms)
            t_rules += time.perf_counter() - t
            notes.extend(out)
            prev_notes.extend(prev.process(plain, w.window_end_ms))
            # snapshot at activation: resolved alerts are purged later
            activations.extend((t_.fingerprint, w.window_end_ms, msgspec.structs.replace(alerts.state.alerts[t_.fingerprint]))
                               for t_ in alerts.last_transitions if t_.new == "firing")
    t_chain = time.perf_counter() - t0
    return (notes, sim.ground_truth, sim.start_ms, alerts, activations,
            {"windows": windows, "alerts_s": t_rules, "chain_s": t_chain, "prev_notes": prev_notes})


def matches(gt: dict, a) -> bool:
    lab = a.labels
    typ = gt["type"]
    sensors = set(gt["sensor_ids"] or [])
    if typ == "accident":
        return (gt["segment_id"] and lab.get("segment_id") == gt["segment_id"]) or (
            gt["cell"] and lab.get("cell") == gt["cell"] and lab.get("category") in ("traffic", "emergency"))
    if typ == "pollution_episode":
        return lab.get("category") == "environment" and lab.get("district") == gt["district"] and lab.get("subcategory") == "airPollution"
    if typ == "water_main_burst":
        # a multi-point alert names its member sources ("feed:id,..."): the burst's meters among them
        members = {x.split(":", 1)[-1] for x in (lab.get("sources") or "").split(",") if x}
        return lab.get("category") == "utilities" and (lab.get("sensor_id") in sensors or lab.get("cell") == gt["cell"]
                                                      or (lab.get("district") == gt["district"] and a.kind == "multipoint")
                                                      or bool(members & sensors))
    # sensor faults: an alert on the sensor, or a detector/health alert on the segment it measures
    return lab.get("sensor_id") in sensors or (
        bool(gt["segment_id"]) and lab.get("segment_id") == gt["segment_id"] and lab.get("category") in ("anomaly", "sensor_health"))


def _per_sub(notes, gt):
    """Actionable and update notifications per subscriber about one scenario, first any / first page time."""
    lo, hi = gt["start_ms"] - EARLY_MS, gt["end_ms"] + GRACE_MS
    per_sub, updates = Counter(), Counter()
    first = first_page = None
    for n in notes:
        if n.status == "firing" and lo <= n.ts_ms <= hi and any(matches(gt, a) for a in n.alerts):
            if n.reason in ("alert", "escalation"):
                per_sub[n.subscription_id] += 1
                first_page = n.ts_ms if first_page is None else min(first_page, n.ts_ms)
            else:
                updates[n.subscription_id] += 1
            first = n.ts_ms if first is None else min(first, n.ts_ms)
    return per_sub, updates, first, first_page


def _minutes(t, t0):
    return None if t is None else round((t - t0) / 60_000, 1)


def score(notes, truth, alerts_state, activations, subs, prev_notes=()):
    router = Router()
    rows = []
    for gt in truth.iter_rows(named=True):
        lo, hi = gt["start_ms"] - EARLY_MS, gt["end_ms"] + GRACE_MS
        per_sub, updates, first, first_page = _per_sub(notes, gt)
        prev_sub, _, _, prev_page = _per_sub(prev_notes, gt)
        # the peer: one message per matching alert activation per matching subscriber, no grouping/inhibition
        naive = Counter()
        for fp, t, a in activations:
            if not (lo <= t <= hi) or not matches(gt, a):
                continue
            for s in subs:
                if router.matches(s, a):
                    naive[s.id] += 1
        rows.append({
            "scenario": gt["scenario_id"], "type": gt["type"], "alerted": first is not None,
            "ttfn_min": _minutes(first, lo), "ttfa_min": _minutes(first_page, lo),
            "prev_ttfa_min": _minutes(prev_page, lo),
            "subscribers": len(per_sub),
            "notes_per_sub": round(sum(per_sub.values()) / len(per_sub), 2) if per_sub else 0.0,
            "updates_per_sub": round(sum(updates.values()) / len(per_sub), 2) if per_sub else 0.0,
            "prev_per_sub": round(sum(prev_sub.values()) / len(prev_sub), 2) if prev_sub else 0.0,
            "naive_per_sub": round(sum(naive.values()) / len(naive), 2) if naive else 0.0,
            "where": gt["segment_id"] or gt["cell"] or gt["district"] or ",".join(gt["sensor_ids"] or []),
        })
    return rows


def _actionable(notes):
    return [n for n in notes if n.status == "firing" and n.reason in ("alert", "escalation")]


def clean_report(cnotes, prev_notes, cstate, cacts, subs, truth_rows: int, hours: float) -> None:
    """Per subscriber: pages, updates, what the daily digest holds, both peers; pages by rule."""
    per_day = 24.0 / hours
    router = Router()
    act, prev_act = _actionable(cnotes), _actionable(prev_notes)
    updates = Counter(n.subscription_id for n in cnotes if n.status == "firing" and n.reason in ("update", "repeat"))
    naive = Counter(s.id for _, _, a in cacts for s in subs if router.matches(s, a))
    # expected alerts: in digests sent during the day, plus what waits for the next (midnight) digest
    digest = defaultdict(set)
    for n in cnotes:
        if n.reason == "digest":
            digest[n.subscription_id].update(a.fingerprint for a in n.alerts)
    for sid, ss in cstate.state.subs_state.items():
        digest[sid].update(ss.digest)
    print(f"\nclean day ({hours:g} h, no scenarios/faults; ground truth rows: {truth_rows}): "
          f"{len(act)} actionable notifications -> {len(act) * per_day:.1f} per day "
          f"(previous grouping: {len(prev_act)}; peer: {sum(naive.values())}; {len(cacts)} alert activations of any severity)")
    print(f"  {'subscriber':<20}{'actionable':<12}{'updates':<9}{'in digest':<11}{'prev':<6}{'peer':<6}actionable by rule")
    for s in subs:
        by_rule = Counter(a.rule_id for n in act if n.subscription_id == s.id for a in n.alerts)
        mine = sum(n.subscription_id == s.id for n in act)
        print(f"  {s.id:<20}{mine:<12}{updates[s.id]:<9}{len(digest[s.id]):<11}"
              f"{sum(n.subscription_id == s.id for n in prev_act):<6}{naive[s.id]:<6}{dict(by_rule.most_common())}")
    by_rule = Counter(a.rule_id for _, _, a in cacts for s in subs if router.matches(s, a))
    print("  subscribed alert activations by rule:", dict(by_rule.most_common()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, default=24.0, help="stream hours per simulated day (default 24)")
    ap.add_argument("--seed", type=int, default=None, help="seed (single day: default 0; --seeds: first seed, default random)")
    ap.add_argument("--seeds", type=int, default=0, help="generalisation mode: this many randomised cold-start days")
    ap.add_argument("--clean-hours", type=float, default=12.0, help="generalisation mode: clean span per seed (h)")
    ap.add_argument("--without-fault-operator", action="store_true",
                    help="leave out the sensor-fault operator (the configuration before it, for comparison)")
    args = ap.parse_args()
    global WITH_FAULT_OPERATOR
    WITH_FAULT_OPERATOR = not args.without_fault_operator
    if args.seeds:
        from alert_generalise import generalise  # the randomised-day mode lives beside this file

        return generalise(args.seeds, args.seed, args.hours, args.clean_hours)
    args.seed = 0 if args.seed is None else args.seed
    city = load_city(demo_city_path())
    subs = subscriptions()

    probe = Simulator(city, seed=args.seed, scenarios=[], faults=[])
    day0 = probe.start_ms
    scen = [s for s in scenario_day(day0) if s.start_ms < day0 + args.hours * H]
    print(f"scenario day: {len(scen)} scenarios over {args.hours:g} h; then a clean day", flush=True)
    notes, truth, _, state, acts, st1 = run_day(city, args.seed, day0, args.hours,
                                               [s for s in scen if s.type in ("accident", "pollution_episode", "water_main_burst")],
                                               [s for s in scen if s.type.startswith("sensor_")])
    rows = score(notes, truth, state.state, acts, subs, st1["prev_notes"])
    print(f"\n{'scenario':<14}{'type':<19}{'where':<10}{'alerted':<9}{'t→1st':<7}{'t→page':<8}{'prev':<6}{'subs':<6}"
          f"{'actionable/sub':<16}{'updates/sub':<13}{'prev/sub':<10}{'peer/sub':<10}peer÷actionable")
    for r in rows:
        ratio = f"{r['naive_per_sub'] / r['notes_per_sub']:.1f}x" if r["notes_per_sub"] else "-"
        print(f"{r['scenario']:<14}{r['type']:<19}{r['where'][:9]:<10}{str(r['alerted']):<9}{str(r['ttfn_min']):<7}"
              f"{str(r['ttfa_min']):<8}{str(r['prev_ttfa_min']):<6}{r['subscribers']:<6}{r['notes_per_sub']:<16}"
              f"{r['updates_per_sub']:<13}{r['prev_per_sub']:<10}{r['naive_per_sub']:<10}{ratio}")
    print("  t→1st: first notification of any kind (min); t→page / prev: first actionable one, now / with the previous "
          "grouping; prev/sub: actionable per subscriber with the previous grouping (district groups, no correlation, "
          "no digest); peer/sub: one message per alert activation")
    hit = sum(r["alerted"] for r in rows)
    print(f"\ndetected {hit}/{len(rows)} scenarios; scenario-day notifications: {len(notes)} "
          f"({sum(n.status == 'firing' for n in notes)} firing, {sum(n.reason == 'digest' for n in notes)} digests); "
          f"chain {st1['chain_s']:.0f} s for {st1['windows']} windows, of which rules+alert pipeline {st1['alerts_s']:.1f} s")

    clean_start = day0 + int(max(args.hours, 24) * H)
    cnotes, ctruth, _, cstate, cacts, st2 = run_day(city, args.seed + 1, clean_start, args.hours, [], [])
    clean_report(cnotes, st2["prev_notes"], cstate, cacts, subs, ctruth.height, args.hours)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
