"""Alert quality on randomised days the rules were never tuned on (``bench/alert_quality.py --seeds N``).

Each seed draws its own day: two accidents, a pollution episode, a water-main burst and two faults
of each kind (stuck, dropout, spikes, drift), each fault on a different sensor family (traffic
detector, air, noise, water quality, utility, heat, hazard, weather), all at random places, random
hours (00:30-21:00 local; pollution starts 00:00-10:00 as in the simulator's own schedule) and
random durations. The engine starts cold at local midnight (no history) and runs the whole chain as
``citybrain run`` does (simulator → CityPipeline → window operators → default rule packs → alert
pipeline with the bench's department subscriptions). Then a clean span of ``--clean-hours`` (no
scenario, no fault; background incidents and outages still happen) is run from a cold start too.

Reported, over all seeds:

* recall per scenario type. An event counts when a subscriber was paged about it (same place,
  before its end + 30 min). A fault counts only when **sensor maintenance** was paged about that
  sensor: a drifting sensor that pages ecology is a false city event, not a catch (column
  ``misrouted``: faults that paged a city-event department);
* time to first page (median minutes after the scenario start, min-max);
* pages per notified subscriber per scenario (target 1);
* pages per clean day: all actionable notifications on the clean span scaled to 24 h, and the part
  that went to sensor maintenance (false fault pages), per subscriber.

The peer measured in the same run is the previous configuration kept by ``run_day`` ("prev":
district groups, no correlation, no digest) on the same rule candidates.
"""
from __future__ import annotations

import statistics
import time
from collections import Counter, defaultdict

import numpy as np

from alert_quality import EARLY_MS, H, _actionable, _per_sub, matches, run_day, subscriptions
from brain.city import demo_city_path, load_city
from brain.schemas import KIND_SENSOR_TYPES
from streams.sim import Simulator
from streams.sim.lifelines import utility_field
from streams.sim.scenarios import Scenario

#: sensor families a fault is drawn on, with the sensor types in each
FAMILIES = {
    "traffic": KIND_SENSOR_TYPES["traffic"],
    "air": frozenset({"air"}),
    "noise": frozenset({"noise"}),
    "water_quality": frozenset({"water_quality"}),
    "utility": frozenset({"utility_power", "utility_water", "utility_gas"}),
    "heat": frozenset({"utility_heat"}),
    "hazard": frozenset({"hazard"}),
    "weather": frozenset({"weather"}),
}
FAULTS = ("sensor_stuck", "sensor_dropout", "sensor_spikes", "sensor_drift")
CITY_EVENT_SUBS = ("traffic-police", "ecology", "water-gas-power", "emergency-mgmt", "city-command")
MAINT = "sensor-maintenance"
GRACE_MS = 30 * 60_000


def random_day(city, seed: int, midnight_ms: int) -> tuple[list[Scenario], list[Scenario], dict[str, str]]:
    """(events, faults, family of each fault) for one seed, on the local day starting at ``midnight_ms``."""
    rng = np.random.default_rng([seed, 17])
    at = lambda h: midnight_ms + int(round(h * 3600)) * 1000  # noqa: E731
    minutes = lambda lo, hi: float(round(rng.uniform(lo, hi) * 60))  # noqa: E731
    pressure = [s.id for s in city.sensors if s.type == "utility_water" and utility_field(s) == "pressure_kpa"]
    burst_at = str(rng.choice(pressure))
    events = [Scenario(type="accident", start_ms=at(rng.uniform(0.5, 21.0)), duration_s=minutes(30, 60),
                       scenario_id=f"accident-{k}") for k in (1, 2)]
    events.append(Scenario(type="pollution_episode", start_ms=at(rng.uniform(0.0, 10.0)), duration_s=minutes(480, 840),
                           scenario_id="pollution-1"))
    events.append(Scenario(type="water_main_burst", start_ms=at(rng.uniform(0.5, 21.0)), duration_s=minutes(60, 180),
                           target=burst_at, scenario_id="burst-1"))
    used = {burst_at}
    faults, family = [], {}
    fams = list(FAMILIES)
    for ftype in FAULTS:
        for fam in rng.choice(fams, size=2, replace=False):
            pool = [s.id for s in city.sensors if s.type in FAMILIES[str(fam)] and s.id not in used]
            target = str(rng.choice(pool))
            used.add(target)
            sid = f"{ftype.removeprefix('sensor_')}-{fam}"
            faults.append(Scenario(type=ftype, start_ms=at(rng.uniform(0.5, 21.0)), duration_s=minutes(60, 240),
                                   target=target, scenario_id=sid))
            family[sid] = str(fam)
    return events, faults, family


def _judge(notes, gt) -> dict:
    """Pages about one scenario: per subscriber, first page time, and whether maintenance was told."""
    per_sub, _, _, first_page = _per_sub(notes, gt)
    row = {"per_sub": per_sub, "first_page": first_page}
    if gt["type"].startswith("sensor_"):
        lo, hi = gt["start_ms"] - EARLY_MS, gt["end_ms"] + GRACE_MS
        maint = [n.ts_ms for n in notes if n.subscription_id == MAINT and n.status == "firing" and lo <= n.ts_ms <= hi
                 and any(set(gt["sensor_ids"]) & {a.labels.get("sensor_id"), a.labels.get("key")} for a in n.alerts)]
        row["caught"] = bool(maint)
        row["first_page"] = min(maint) if maint else None
        row["misrouted"] = any(per_sub.get(s, 0) for s in CITY_EVENT_SUBS)
    else:
        row["caught"] = bool(per_sub)
        row["misrouted"] = False
    return row


def generalise(n_seeds: int, first_seed: int | None, hours: float, clean_hours: float) -> int:
    city = load_city(demo_city_path())
    subs = subscriptions()
    seed0 = int(np.random.default_rng().integers(1_000, 1_000_000)) if first_seed is None else first_seed
    print(f"generalisation: {n_seeds} seeds from {seed0}, cold start at local midnight, {hours:g} h per day, "
          f"clean span {clean_hours:g} h per seed", flush=True)
    per_type: dict[str, list[dict]] = defaultdict(list)
    prev_type: dict[str, list[dict]] = defaultdict(list)
    by_family: dict[str, list[bool]] = defaultdict(list)
    clean_pages, clean_prev, clean_maint = Counter(), Counter(), Counter()
    clean_total_h = 0.0
    t0 = time.perf_counter()
    for seed in range(seed0, seed0 + n_seeds):
        probe = Simulator(city, seed=seed, scenarios=[], faults=[])
        midnight = probe.start_ms  # local midnight (the simulator default start)
        events, faults, family = random_day(city, seed, midnight)
        notes, truth, _, _, _, st = run_day(city, seed, midnight, hours, events, faults)
        missed, misrouted = [], []
        for gt in truth.iter_rows(named=True):
            if gt["start_ms"] >= midnight + hours * H:
                continue
            row, prev = _judge(notes, gt), _judge(st["prev_notes"], gt)
            row.update(start_h=(gt["start_ms"] - midnight) / H, start_ms=gt["start_ms"], id=gt["scenario_id"], seed=seed)
            per_type[gt["type"]].append(row)
            prev_type[gt["type"]].append(prev)
            if gt["scenario_id"] in family:
                by_family[f"{gt['type'].removeprefix('sensor_')}/{family[gt['scenario_id']]}"].append(row["caught"])
            if not row["caught"]:
                missed.append(f"{gt['scenario_id']}@{row['start_h']:.1f}h")
            if row["misrouted"]:  # a fault that paged a city-event department
                misrouted.append(f"{gt['scenario_id']}:{','.join(gt['sensor_ids'] or [])}@{row['start_h']:.1f}h")
        cnotes, _, _, _, _, cst = run_day(city, seed + 10_000, midnight + 24 * H, clean_hours, [], [])
        clean_total_h += clean_hours
        for n in _actionable(cnotes):
            clean_pages[n.subscription_id] += 1
        for n in _actionable(cst["prev_notes"]):
            clean_prev[n.subscription_id] += 1
        clean_maint[seed] = sum(n.subscription_id == MAINT for n in _actionable(cnotes))
        print(f"  seed {seed}: missed {missed or 'none'}; misrouted {misrouted or 'none'}; clean pages "
              f"{len(_actionable(cnotes))} ({time.perf_counter() - t0:.0f} s)", flush=True)

    print(f"\n{'type':<19}{'recall':<9}{'prev':<8}{'misrouted':<11}{'t→page med (min-max)':<24}{'pages/sub':<11}prev/sub")
    caught = total = 0
    for typ, rows in sorted(per_type.items()):
        hit = sum(r["caught"] for r in rows)
        caught, total = caught + hit, total + len(rows)
        prev_hit = sum(r["caught"] for r in prev_type[typ])
        mins = sorted(round((r["first_page"] - r["start_ms"]) / 60_000, 1) for r in rows if r["first_page"] is not None)
        med = f"{statistics.median(mins):.0f} ({mins[0]:.0f}-{mins[-1]:.0f})" if mins else "-"
        pps = [sum(r["per_sub"].values()) / len(r["per_sub"]) for r in rows if r["per_sub"]]
        ppp = [sum(r["per_sub"].values()) / len(r["per_sub"]) for r in prev_type[typ] if r["per_sub"]]
        mis = sum(r["misrouted"] for r in rows)
        print(f"{typ:<19}{hit}/{len(rows):<7}{prev_hit}/{len(rows):<6}{mis:<11}{med:<24}"
              f"{(f'{statistics.mean(pps):.2f}' if pps else '-'):<11}{(f'{statistics.mean(ppp):.2f}' if ppp else '-')}")
    print(f"all scenarios: {caught}/{total} caught ({caught / max(total, 1):.0%})")
    print("faults by family (caught/total): " + ", ".join(
        f"{k} {sum(v)}/{len(v)}" for k, v in sorted(by_family.items())))
    per_day = 24.0 / max(clean_total_h, 1e-9)
    print(f"\nclean spans ({clean_total_h:g} h in all): pages per clean day "
          f"{sum(clean_pages.values()) * per_day:.1f} (prev config: {sum(clean_prev.values()) * per_day:.1f}); "
          f"to sensor maintenance {clean_pages[MAINT] * per_day:.1f}")
    print("  per subscriber per day: " + ", ".join(f"{s.id} {clean_pages[s.id] * per_day:.1f}" for s in subs))
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0
