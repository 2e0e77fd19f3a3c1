"""An ambulance crossing the SUMO arterial, with and without emergency priority (一键护航).

Both runs drive every signal from the same schedule through TraCI (the plan's phases at its
offsets); with priority, :class:`brain.greenwave.priority.EmergencyPriority` gets the
ambulance's position and speed every second and its requests' adjusted green intervals replace
the schedule of the affected cycle. Same seed, same demand: the difference is the priority.
"""
from __future__ import annotations

import bisect
from pathlib import Path

import numpy as np

from bench.sumo_net.arterial import APPROACH_M, _bin, integer_timings, tripinfo_stats, write_routes
from brain.greenwave.priority import EmergencyPriority


class Schedule:
    """Absolute phase schedule of one SUMO signal: sorted starts and SUMO phase indices."""

    def __init__(self, plan, i: int, end_s: float):
        it = plan.intersections[i]
        self.C = plan.cycle_s
        self.idx_of: dict[int, tuple[int, int, int | None]] = {}
        base: list[tuple[float, int]] = []
        sidx, t = 0, 0.0
        for k, (g, y, r) in enumerate(integer_timings(plan)[i]):
            num = it.phases[k].number
            red_idx = sidx + 2 if r > 0 else None
            self.idx_of[num] = (sidx, sidx + 1, red_idx)
            base += [(t, sidx), (t + g, sidx + 1)] + ([(t + g + y, red_idx)] if r > 0 else [])
            sidx += 3 if r > 0 else 2
            t += g + y + r
        self.clear = {p.number: (p.yellow_s, p.all_red_s) for p in it.phases}
        starts, idx = [], []
        k0 = int(np.floor(-it.offset_s / self.C)) - 1
        for k in range(k0, int(end_s / self.C) + 2):
            for t0, s in base:
                starts.append(it.offset_s + k * self.C + t0)
                idx.append(s)
        self.base = (starts, idx)
        self.starts, self.idx = list(starts), list(idx)

    def apply(self, greens: list[list[float]], region_end: float) -> None:
        """Replace [first green start, region_end) with the adjusted green intervals (start from the base)."""
        self.starts, self.idx = list(self.base[0]), list(self.base[1])
        a = greens[0][1]
        lo = bisect.bisect_left(self.starts, a - 1e-6)
        hi = bisect.bisect_left(self.starts, region_end - 1e-6)
        new: list[tuple[float, int]] = []
        for n, (num, g0, g1) in enumerate(greens):
            gi, yi, ri = self.idx_of[int(num)]
            new.append((g0, gi))
            if g1 < region_end - 1e-6:
                y, r = self.clear[int(num)]
                new.append((g1, yi))
                if ri is not None:
                    new.append((g1 + y, ri))
        self.starts[lo:hi] = [s for s, _ in new]
        self.idx[lo:hi] = [x for _, x in new]

    def at(self, t: float) -> tuple[int, float]:
        k = bisect.bisect_right(self.starts, t + 1e-9) - 1
        return self.idx[k], self.starts[k + 1] - t


def _corridor_position(road: str, lane_pos: float, chain_x: list[float]) -> float | None:
    if road.startswith("o") and road[1:].isdigit():
        return chain_x[int(road[1:])] + lane_pos - APPROACH_M
    if road.startswith(":J"):
        j = int(road[2:].split("_")[0])
        return chain_x[j + 1] - APPROACH_M
    return None


def run_ambulance(spec, art, plan, offsets_add: Path, seed: int, depart_s: float, priority: bool,
                  max_cross_delay_s: float = 30.0) -> dict:
    import traci

    workdir = art.workdir
    side = [float(it.phases[1].flow_vph or 200.0) for it in spec.intersections]
    routes = write_routes(art, workdir / f"amb_{seed}.rou.xml", spec.volume_out_vph or 800, spec.volume_in_vph or 800,
                          side, depart_s + 600, ambulance_depart_s=depart_s)
    end = depart_s + 900
    tag = f"amb_{'prio' if priority else 'plain'}_{seed}"
    trip = workdir / f"trip_{tag}.xml"
    cmd = [_bin("sumo"), "-n", str(art.net), "-r", str(routes), "-a", str(offsets_add), "--seed", str(seed),
           "--end", f"{end:.0f}", "--tripinfo-output", str(trip), "--no-step-log", "true", "--no-warnings", "true",
           "--step-length", "0.5", "--time-to-teleport", "-1"]
    traci.start(cmd, label=tag)
    conn = traci.getConnection(tag)
    scheds = [Schedule(plan, i, end) for i in range(spec.n)]
    chain = [0.0] + [APPROACH_M + it.position_m - spec.intersections[0].position_m for it in spec.intersections]
    ev = EmergencyPriority(spec, plan, [it.id for it in spec.intersections], vehicle_id="ambulance",
                           incident_id=f"INC-{seed}", max_cross_delay_s=max_cross_delay_s) if priority else None
    last_update = -1.0
    try:
        while conn.simulation.getTime() < end:
            conn.simulationStep()
            t = conn.simulation.getTime()
            if ev is not None and t - last_update >= 1.0 and "ambulance" in conn.vehicle.getIDList():
                last_update = t
                pos = _corridor_position(conn.vehicle.getRoadID("ambulance"), conn.vehicle.getLanePosition("ambulance"), chain)
                if pos is not None:
                    for r in ev.update(t, pos, conn.vehicle.getSpeed("ambulance") * 3.6):
                        if r.action in ("extend", "early", "partial") and r.phase_greens:
                            i = [it.id for it in spec.intersections].index(r.intersection)
                            it = plan.intersections[i]
                            k = it.phases.index(next(p for p in it.phases if p.number == r.phase))
                            region_end = r.phase_greens[0][1] + plan.cycle_s
                            if r.phase_greens[-1][0] == r.phase and len(r.phase_greens) > len(it.phases):
                                region_end = r.phase_greens[-1][2]
                            scheds[i].apply(r.phase_greens, region_end)
            for i, s in enumerate(scheds):
                idx, remaining = s.at(t)
                tl = f"J{i}"
                if conn.trafficlight.getPhase(tl) != idx:
                    conn.trafficlight.setPhase(tl, idx)
                conn.trafficlight.setPhaseDuration(tl, max(remaining, 0.1))
    finally:
        conn.close()
    stats = tripinfo_stats(trip)
    others = [d for g, v in stats.items() if g != "ambulance" for d in v["delay_s"]]
    out = {
        "ambulance_travel_s": stats["ambulance"]["travel_s"][0] if "ambulance" in stats else float("nan"),
        "ambulance_stops": stats["ambulance"]["stops"][0] if "ambulance" in stats else float("nan"),
        "others_delay_s": float(np.mean(others)),
        "side_delay_s": float(np.mean(stats["side"]["delay_s"])) if "side" in stats else float("nan"),
    }
    if ev is not None:
        out["requests"] = len(ev.log)
        out["actions"] = {a: sum(1 for r in ev.log if r.action == a) for a in sorted({r.action for r in ev.log})}
        out["max_cross_delay_s"] = max((r.cross_delay_s for r in ev.log), default=0.0)
    return out


def ambulance_trial(spec, art, routes, offsets_add: Path, plan, seeds) -> dict:
    rows = []
    for seed in seeds:
        depart = 900.0 + 13.0 * seed
        plain = run_ambulance(spec, art, plan, offsets_add, seed, depart, priority=False)
        prio = run_ambulance(spec, art, plan, offsets_add, seed, depart, priority=True)
        rows.append((plain, prio))
    def m(key, which):
        return float(np.mean([r[which][key] for r in rows]))
    return {
        "runs": len(rows),
        "ambulance_travel_s": {"without": m("ambulance_travel_s", 0), "with": m("ambulance_travel_s", 1)},
        "ambulance_stops": {"without": m("ambulance_stops", 0), "with": m("ambulance_stops", 1)},
        "others_delay_s": {"without": m("others_delay_s", 0), "with": m("others_delay_s", 1)},
        "side_delay_s": {"without": m("side_delay_s", 0), "with": m("side_delay_s", 1)},
        "max_cross_delay_s": max(r[1]["max_cross_delay_s"] for r in rows),
        "actions": [r[1]["actions"] for r in rows],
    }
