"""Two arterials crossing at a shared signal, in SUMO: corridor A west-east, corridor B south-north.

Both are two lanes each way; every other signal has a side street (one lane each way, 200 m arms)
crossing its arterial. Each signal runs two phases — its own arterial (coordinated) then the
cross direction — from its corridor's plan; the shared signal ``X`` runs corridor A's plan
(:func:`brain.greenwave.network.plan_crossing` makes corridor B's plan agree with it). Demand:
Poisson through traffic on both arterials both ways and on every side street.

Only usable when ``sumo`` (the eclipse-sumo wheel) is installed.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.sumo_net.arterial import APPROACH_M, SIDE_M, _bin, _run, integer_timings
from brain.greenwave.model import CorridorSpec, IntersectionSpec, PhaseSpec


@dataclass
class Crossing:
    workdir: Path
    net: Path
    ids_a: list[str]
    ids_b: list[str]

    def chain(self, corridor: str, direction: str) -> list[str]:
        ids = self.ids_a if corridor == "a" else self.ids_b
        k = range(len(ids) + 1)
        return [f"{corridor}o{i}" for i in k] if direction == "out" else [f"{corridor}i{i}" for i in reversed(k)]


def crossing_specs(na: int, nb: int, seed: int, speed_kmh: float = 48.0):
    """Corridors A (``na`` signals) and B (``nb``) sharing signal ``X``, spacings 200-600 m,
    unbalanced demand; returns ``(spec_a, spec_b, side_vph)`` (side streets by signal id)."""
    rng = np.random.default_rng(seed)
    ja, jb = na // 2, nb // 2
    specs, side = [], {}
    for c, n, j in (("A", na, ja), ("B", nb, jb)):
        pos = np.concatenate([[0.0], np.cumsum(rng.uniform(200, 600, n - 1))]).round(0)
        v_out = float(round(rng.uniform(600, 900)))
        v_in = float(round(v_out * rng.uniform(0.4, 0.8)))
        inters = []
        for i, x in enumerate(pos):
            iid = "X" if i == j else f"{c}{i}"
            s = float(round(rng.uniform(100, 220)))
            if iid != "X":
                side[iid] = s
            mine, other = ("EW", "NS") if c == "A" else ("NS", "EW")
            inters.append(IntersectionSpec(id=iid, position_m=float(x), phases=[
                PhaseSpec(name=mine, min_green_s=15, ped_clearance_s=12, coordinated=True, flow_vph=max(v_out, v_in) / 2),
                PhaseSpec(name=other, min_green_s=12, ped_clearance_s=15, flow_vph=s)]))
        specs.append(CorridorSpec(id=f"cross-{c}-s{seed}", intersections=inters, speed_out_kmh=speed_kmh,
                                  speed_in_kmh=speed_kmh, cycle_s=60.0, cycle_min_s=60, cycle_max_s=120,
                                  volume_out_vph=v_out, volume_in_vph=v_in, lanes_per_direction=2))
    # X's cross phase carries the other arterial: its flow is that arterial's critical lane flow
    a, b = specs
    xa, xb = a.intersections[ja], b.intersections[jb]
    xa.phases[1].flow_vph, xb.phases[1].flow_vph = xb.phases[0].flow_vph, xa.phases[0].flow_vph
    return a, b, side


def build_crossing(spec_a: CorridorSpec, spec_b: CorridorSpec, workdir: Path, kmh: float = 50.0,
                   side_kmh: float = 40.0) -> Crossing:
    """Nodes and edges of both arterials and the side streets, through netconvert (static signals)."""
    workdir.mkdir(parents=True, exist_ok=True)
    ja = [it.id for it in spec_a.intersections].index("X")
    jb = [it.id for it in spec_b.intersections].index("X")
    xa = [APPROACH_M + it.position_m for it in spec_a.intersections]
    yb = [APPROACH_M + it.position_m for it in spec_b.intersections]
    x0, y0 = xa[ja], yb[jb]  # X at (x0, y0) in both
    nodes = ET.Element("nodes")
    edges = ET.Element("edges")
    coords = {"WA": (0.0, y0), "EA": (xa[-1] + APPROACH_M, y0), "SB": (x0, 0.0), "NB": (x0, yb[-1] + APPROACH_M)}
    for it, x in zip(spec_a.intersections, xa):
        coords[it.id] = (x, y0)
    for it, y in zip(spec_b.intersections, yb):
        coords[it.id] = (x0, y)
    signals = {it.id for it in spec_a.intersections} | {it.id for it in spec_b.intersections}
    for nid, (x, y) in coords.items():
        attrs = {"id": nid, "x": f"{x:.2f}", "y": f"{y:.2f}"}
        if nid in signals:
            attrs.update(type="traffic_light", tlType="static")
        ET.SubElement(nodes, "node", attrs)

    def edge(eid, a, b, lanes, v, prio):
        ET.SubElement(edges, "edge", {"id": eid, "from": a, "to": b, "numLanes": str(lanes), "speed": f"{v / 3.6:.3f}",
                                      "priority": str(prio)})

    for c, spec, ends in (("a", spec_a, ("WA", "EA")), ("b", spec_b, ("SB", "NB"))):
        chain = [ends[0]] + [it.id for it in spec.intersections] + [ends[1]]
        for k in range(len(chain) - 1):
            edge(f"{c}o{k}", chain[k], chain[k + 1], 2, kmh, 3)
            edge(f"{c}i{k}", chain[k + 1], chain[k], 2, kmh, 3)
        for it in spec.intersections:
            if it.id == "X":
                continue
            x, y = coords[it.id]
            # side arms perpendicular to this corridor
            for s, (dx, dy) in (("p", (0, SIDE_M) if c == "a" else (SIDE_M, 0)), ("m", (0, -SIDE_M) if c == "a" else (-SIDE_M, 0))):
                nid = f"{it.id}{s}"
                ET.SubElement(nodes, "node", {"id": nid, "x": f"{x + dx:.2f}", "y": f"{y + dy:.2f}"})
                edge(f"{it.id}_{s}in", nid, it.id, 1, side_kmh, 1)
                edge(f"{it.id}_{s}out", it.id, nid, 1, side_kmh, 1)
    ET.ElementTree(nodes).write(workdir / "x.nod.xml")
    ET.ElementTree(edges).write(workdir / "x.edg.xml")
    net = workdir / "x.net.xml"
    _run([_bin("netconvert"), "-n", str(workdir / "x.nod.xml"), "-e", str(workdir / "x.edg.xml"), "-o", str(net),
          "--no-turnarounds", "true", "--tls.default-type", "static"])
    return Crossing(workdir, net, [it.id for it in spec_a.intersections], [it.id for it in spec_b.intersections])


def write_crossing_programs(cr: Crossing, plan_a, plan_b, offsets: dict[str, float], out: Path) -> Path:
    """Every signal's two-phase program (its corridor's plan; X: corridor A's) and its offset."""
    import sumolib

    net = sumolib.net.readNet(str(cr.net))
    timings = {it.id: row for it, row in zip(plan_a.intersections, integer_timings(plan_a))}
    timings |= {it.id: row for it, row in zip(plan_b.intersections, integer_timings(plan_b)) if it.id != "X"}
    root = ET.Element("additional")
    for iid, row in timings.items():
        tls = net.getTLS(iid)
        size = 1 + max(c[2] for c in tls.getConnections())
        mine = "a" if iid in cr.ids_a else "b"  # X is run by corridor A's plan: A's arterial first
        coord, other = ["r"] * size, ["r"] * size
        for in_lane, out_lane, idx in tls.getConnections():
            eid = in_lane.getEdge().getID()
            straight = out_lane.getEdge().getID()[:2] == eid[:2] or ("_" in eid and "_" in out_lane.getEdge().getID())
            (coord if eid[0] == mine and eid[1] in "oi" and "_" not in eid else other)[idx] = "G" if straight else "g"
        logic = ET.SubElement(root, "tlLogic", {"id": iid, "type": "static", "programID": "x",
                                                 "offset": f"{offsets[iid]:.2f}"})
        for state, (g, y, r) in zip((coord, other), row):
            ET.SubElement(logic, "phase", {"duration": f"{g:.0f}", "state": "".join(state)})
            ET.SubElement(logic, "phase", {"duration": f"{y:g}", "state": "".join("y" if s in "Gg" else "r" for s in state)})
            if r > 0:
                ET.SubElement(logic, "phase", {"duration": f"{r:g}", "state": "r" * size})
    ET.ElementTree(root).write(out)
    return out


def ambulance_edges(cr: Crossing) -> list[str]:
    """Across both corridors: A eastbound from its west end to X, left onto B, northbound to B's end."""
    ja, jb = cr.ids_a.index("X"), cr.ids_b.index("X")
    return [f"ao{k}" for k in range(ja + 1)] + [f"bo{k}" for k in range(jb + 1, len(cr.ids_b) + 1)]


def write_crossing_routes(cr: Crossing, spec_a, spec_b, side_vph: dict[str, float], duration_s: float, out: Path,
                          ambulance_depart_s: float | None = None, special_rights: bool = False) -> Path:
    """Poisson through traffic on both arterials and every side street; optionally one ambulance
    across both corridors (``vClass`` emergency; with ``special_rights`` SUMO's bluelight device)."""
    root = ET.Element("routes")
    ET.SubElement(root, "vType", {"id": "car", "accel": "2.6", "decel": "4.5", "sigma": "0.5", "length": "5",
                                  "minGap": "2.5", "speedFactor": "normc(1,0.08,0.8,1.2)"})
    vt = ET.SubElement(root, "vType", {"id": "ambulance", "vClass": "emergency", "guiShape": "emergency", "accel": "2.8",
                                       "decel": "4.5", "sigma": "0", "speedFactor": "1.1", "latAlignment": "arbitrary"})
    if special_rights:
        ET.SubElement(vt, "param", {"key": "has.bluelight.device", "value": "true"})
    flows = []
    for c, spec in (("a", spec_a), ("b", spec_b)):
        for d, v in (("out", spec.volume_out_vph), ("in", spec.volume_in_vph)):
            flows.append((f"{c}{d}", cr.chain(c, d), v))
    for iid, v in side_vph.items():
        flows += [(f"side{iid}p", [f"{iid}_pin", f"{iid}_mout"], v), (f"side{iid}m", [f"{iid}_min", f"{iid}_pout"], v)]
    for fid, edges, vph in flows:
        ET.SubElement(root, "route", {"id": f"r_{fid}", "edges": " ".join(edges)})
        ET.SubElement(root, "flow", {"id": fid, "type": "car", "route": f"r_{fid}", "begin": "0", "end": f"{duration_s:.0f}",
                                     "period": f"exp({vph / 3600.0:.6f})", "departLane": "best", "departSpeed": "max"})
    if ambulance_depart_s is not None:
        ET.SubElement(root, "route", {"id": "r_amb", "edges": " ".join(ambulance_edges(cr))})
        ET.SubElement(root, "vehicle", {"id": "ambulance", "type": "ambulance", "route": "r_amb",
                                        "depart": f"{ambulance_depart_s:.1f}", "departLane": "best", "departSpeed": "max"})
    ET.ElementTree(root).write(out)
    return out


def crossing_stats(trip: Path) -> dict[str, list[float]]:
    """timeLoss per group: ``A`` / ``B`` arterial through traffic, ``side``."""
    out: dict[str, list[float]] = {"A": [], "B": [], "side": []}
    for _, el in ET.iterparse(trip):
        if el.tag == "tripinfo":
            vid = el.get("id")
            if vid == "ambulance":
                out["ambulance"] = {"travel_s": [float(el.get("duration"))], "delay_s": [float(el.get("timeLoss"))]}
                continue
            g = "side" if vid.startswith("side") else "A" if vid.startswith("a") else "B"
            out[g].append(float(el.get("timeLoss")))
            el.clear()
    return out


def run_escort_crossing(cr: Crossing, spec_a, spec_b, plan_a, plan_b, programs: Path, side_vph, seed: int,
                        depart_s: float, priority: bool, special_rights: bool, **bounds) -> dict:
    """The ambulance across both corridors (A to X, left onto B): every signal driven phase by phase
    through TraCI by its emulated controller, with or without the escort's priority."""
    from bench.sumo_net.ambulance import Schedule
    from bench.sumo_net.escort_sumo import drive, sumo_cmd, summary

    tag = f"xesc_{'bl' if special_rights else 'plain'}_{'prio' if priority else 'none'}_{seed}"
    routes = write_crossing_routes(cr, spec_a, spec_b, side_vph, depart_s + 600, cr.workdir / f"{tag}.rou.xml",
                                   ambulance_depart_s=depart_s, special_rights=special_rights)
    end = depart_s + 900
    trip = cr.workdir / f"trip_{tag}.xml"
    signals = {it.id: (Schedule(plan_a, i, end), plan_a) for i, it in enumerate(plan_a.intersections)}
    signals |= {it.id: (Schedule(plan_b, i, end), plan_b) for i, it in enumerate(plan_b.intersections) if it.id != "X"}
    ja, jb = cr.ids_a.index("X"), cr.ids_b.index("X")
    on_route = cr.ids_a[: ja + 1] + cr.ids_b[jb + 1:]
    drove = drive(sumo_cmd(cr.net, routes, programs, seed, end, trip), tag, signals, ["WA"] + on_route + ["NB"],
                  on_route, {spec_a.id: spec_a, spec_b.id: spec_b}, {spec_a.id: plan_a, spec_b.id: plan_b},
                  priority, special_rights, end, seed, **bounds)
    st = crossing_stats(trip)
    return summary(st.get("ambulance"), st["A"] + st["B"] + st["side"], st["side"], drove)


def run_crossing(cr: Crossing, routes: Path, programs: Path, seed: int, end_s: float, tag: str) -> dict[str, list[float]]:
    trip = cr.workdir / f"trip_{tag}_{seed}.xml"
    _run([_bin("sumo"), "-n", str(cr.net), "-r", str(routes), "-a", str(programs), "--seed", str(seed),
          "--end", f"{end_s:.0f}", "--tripinfo-output", str(trip), "--no-step-log", "true", "--no-warnings", "true",
          "--step-length", "0.5", "--time-to-teleport", "-1"])
    return crossing_stats(trip)
