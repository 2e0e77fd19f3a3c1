"""Build a SUMO arterial from a :class:`brain.greenwave.model.CorridorSpec` and run timing plans on it.

The arterial runs west (position 0) to east, two lanes per direction, with a 300 m approach at
each end; every intersection gets a side street (one lane each way, 200 m arms north and south).
Signals are two-phase to match a two-phase corridor spec: arterial (coordinated) then side street,
each green followed by yellow and all-red. Demand is Poisson (``period="exp(rate)"``) so the seed
matters: arterial through traffic both ways and side-street through traffic at every intersection.

Only usable when ``sumo`` (the eclipse-sumo wheel) is installed.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

APPROACH_M = 300.0
SIDE_M = 200.0


def sumo_home() -> str:
    import sumo

    return sumo.SUMO_HOME


def _bin(name: str) -> str:
    return str(Path(sumo_home()) / "bin" / name)


@dataclass
class Arterial:
    workdir: Path
    net: Path
    n: int
    arterial_kmh: float

    def out_edges(self) -> list[str]:
        return [f"o{k}" for k in range(self.n + 1)]

    def in_edges(self) -> list[str]:
        return [f"i{k}" for k in range(self.n, -1, -1)]


def _chain_x(positions_m) -> list[float]:
    x = [0.0] + [APPROACH_M + p - positions_m[0] for p in positions_m]
    x.append(x[-1] + APPROACH_M)
    return x


def build_arterial(spec, plan, workdir: Path, arterial_kmh: float = 50.0, side_kmh: float = 40.0) -> Arterial:
    """Write nodes/edges and the plan's phases (offset 0) and run netconvert."""
    workdir.mkdir(parents=True, exist_ok=True)
    n = spec.n
    xs = _chain_x([it.position_m for it in spec.intersections])
    names = ["W"] + [f"J{i}" for i in range(n)] + ["E"]
    nodes = ET.Element("nodes")
    for name, x in zip(names, xs):
        attrs = {"id": name, "x": f"{x:.2f}", "y": "0"}
        if name.startswith("J"):
            attrs.update(type="traffic_light", tlType="static")
        ET.SubElement(nodes, "node", attrs)
    for i in range(n):
        ET.SubElement(nodes, "node", {"id": f"N{i}", "x": f"{xs[i + 1]:.2f}", "y": f"{SIDE_M}"})
        ET.SubElement(nodes, "node", {"id": f"S{i}", "x": f"{xs[i + 1]:.2f}", "y": f"{-SIDE_M}"})
    edges = ET.Element("edges")
    va, vs = arterial_kmh / 3.6, side_kmh / 3.6
    for k in range(n + 1):
        ET.SubElement(edges, "edge", {"id": f"o{k}", "from": names[k], "to": names[k + 1], "numLanes": "2",
                                      "speed": f"{va:.3f}", "priority": "3"})
        ET.SubElement(edges, "edge", {"id": f"i{k}", "from": names[k + 1], "to": names[k], "numLanes": "2",
                                      "speed": f"{va:.3f}", "priority": "3"})
    for i in range(n):
        for side in ("N", "S"):
            ET.SubElement(edges, "edge", {"id": f"{side.lower()}{i}in", "from": f"{side}{i}", "to": f"J{i}",
                                          "numLanes": "1", "speed": f"{vs:.3f}", "priority": "1"})
            ET.SubElement(edges, "edge", {"id": f"{side.lower()}{i}out", "from": f"J{i}", "to": f"{side}{i}",
                                          "numLanes": "1", "speed": f"{vs:.3f}", "priority": "1"})
    ET.ElementTree(nodes).write(workdir / "art.nod.xml")
    ET.ElementTree(edges).write(workdir / "art.edg.xml")
    raw = workdir / "raw.net.xml"
    _run([_bin("netconvert"), "-n", str(workdir / "art.nod.xml"), "-e", str(workdir / "art.edg.xml"),
          "-o", str(raw), "--no-turnarounds", "true", "--tls.default-type", "static"])
    tll = workdir / "plan.tll.xml"
    write_programs(spec, plan, raw, tll)
    net = workdir / "art.net.xml"
    _run([_bin("netconvert"), "-s", str(raw), "-i", str(tll), "-o", str(net)])
    return Arterial(workdir=workdir, net=net, n=n, arterial_kmh=arterial_kmh)


def integer_timings(plan) -> list[list[tuple[float, float, float]]]:
    """Per intersection, per phase (green, yellow, all-red) in whole seconds summing to the cycle."""
    out = []
    C = int(round(plan.cycle_s))
    for it in plan.intersections:
        g = np.array([p.green_s for p in it.phases])
        fixed = sum(p.yellow_s + p.all_red_s for p in it.phases)
        target = C - int(round(fixed))
        base = np.floor(g).astype(int)
        rem = target - base.sum()
        order = np.argsort(-(g - base))
        for k in order[: max(rem, 0)]:
            base[k] += 1
        out.append([(float(base[k]), p.yellow_s, p.all_red_s) for k, p in enumerate(it.phases)])
    return out


def write_programs(spec, plan, net_file: Path, out: Path) -> None:
    """tlLogic per intersection: arterial phase, then side phase, from the plan's splits (offset 0)."""
    import sumolib

    net = sumolib.net.readNet(str(net_file))
    root = ET.Element("tlLogics")
    timings = integer_timings(plan)
    for i, it in enumerate(plan.intersections):
        tls = net.getTLS(f"J{i}")
        size = 1 + max(c[2] for c in tls.getConnections())
        art = ["r"] * size
        side = ["r"] * size
        for in_lane, out_lane, idx in tls.getConnections():
            eid = in_lane.getEdge().getID()
            straight = out_lane.getEdge().getID()[0] == eid[0] or (eid[0] in "ns" and out_lane.getEdge().getID()[0] in "ns")
            if eid[0] in "oi":
                art[idx] = "G" if straight else "g"
            else:
                side[idx] = "G" if straight else "g"
        logic = ET.SubElement(root, "tlLogic", {"id": f"J{i}", "type": "static", "programID": "0", "offset": "0"})
        # phases from the outbound coordinated phase (local time 0), in ring order
        for k, ph in enumerate(it.phases):
            green, yellow, red = timings[i][k]
            state = art if ph.coordinated else side
            yel = ["y" if s in "Gg" else "r" for s in state]
            ET.SubElement(logic, "phase", {"duration": f"{green:.0f}", "state": "".join(state)})
            ET.SubElement(logic, "phase", {"duration": f"{yellow:g}", "state": "".join(yel)})
            if red > 0:
                ET.SubElement(logic, "phase", {"duration": f"{red:g}", "state": "r" * size})
    ET.ElementTree(root).write(out)


def write_offsets(arterial: Arterial, offsets_s, out: Path) -> Path:
    """An additional file setting each signal's offset (plan convention: coordinated green start)."""
    root = ET.Element("additional")
    for i, off in enumerate(offsets_s):
        # SUMO's offset shifts the program start: phase 0 (our coordinated green) begins at t = offset.
        ET.SubElement(root, "tlLogic", {"id": f"J{i}", "programID": "0", "offset": f"{float(off):.2f}"})
    ET.ElementTree(root).write(out)
    return out


def read_offsets(add: Path, n: int) -> list[float]:
    """Offsets (s) of J0..J{n-1} from an additional file (``write_offsets``' or tlsCoordinator's)."""
    off = {el.get("id"): float(el.get("offset", 0.0)) for el in ET.parse(add).getroot().iter("tlLogic")}
    return [off.get(f"J{i}", 0.0) for i in range(n)]


def write_routes(arterial: Arterial, out: Path, volume_out_vph: float, volume_in_vph: float,
                 side_vph, duration_s: float, ambulance_depart_s: float | None = None,
                 turns_out: dict | None = None, turns_in: dict | None = None) -> Path:
    """Poisson flows; ``side_vph[i]`` per direction on side street ``i``. Optionally one ambulance outbound.

    ``turns_out[(i, j)]`` veh/h come from the north arm of ``i``, turn east onto the arterial and
    leave it south at ``j > i``; ``turns_in[(i, j)]`` from the south arm of ``i``, west, north at ``j < i``.
    """
    root = ET.Element("routes")
    ET.SubElement(root, "vType", {"id": "car", "accel": "2.6", "decel": "4.5", "sigma": "0.5", "length": "5",
                                  "minGap": "2.5", "speedFactor": "normc(1,0.08,0.8,1.2)"})
    ET.SubElement(root, "vType", {"id": "ambulance", "vClass": "emergency", "guiShape": "emergency",
                                  "accel": "2.8", "decel": "4.5", "sigma": "0", "speedFactor": "1.1"})
    ET.SubElement(root, "route", {"id": "r_out", "edges": " ".join(arterial.out_edges())})
    ET.SubElement(root, "route", {"id": "r_in", "edges": " ".join(arterial.in_edges())})
    for i in range(arterial.n):
        ET.SubElement(root, "route", {"id": f"r_ns{i}", "edges": f"n{i}in s{i}out"})
        ET.SubElement(root, "route", {"id": f"r_sn{i}", "edges": f"s{i}in n{i}out"})
    flows = [("out", "r_out", volume_out_vph), ("in", "r_in", volume_in_vph)]
    for i, v in enumerate(side_vph):
        flows += [(f"ns{i}", f"r_ns{i}", v), (f"sn{i}", f"r_sn{i}", v)]
    # side-street traffic turning into the arterial and leaving it 1-3 junctions on (group "turn")
    for (i, j), v in sorted((turns_out or {}).items()):
        edges = [f"n{i}in"] + [f"o{k}" for k in range(i + 1, j + 1)] + [f"s{j}out"]
        ET.SubElement(root, "route", {"id": f"r_tjo{i}_{j}", "edges": " ".join(edges)})
        flows.append((f"tjo{i}_{j}", f"r_tjo{i}_{j}", v))
    for (i, j), v in sorted((turns_in or {}).items()):
        edges = [f"s{i}in"] + [f"i{k}" for k in range(i, j, -1)] + [f"n{j}out"]
        ET.SubElement(root, "route", {"id": f"r_tji{i}_{j}", "edges": " ".join(edges)})
        flows.append((f"tji{i}_{j}", f"r_tji{i}_{j}", v))
    for fid, rid, vph in flows:
        if vph <= 0:
            continue
        ET.SubElement(root, "flow", {"id": fid, "type": "car", "route": rid, "begin": "0", "end": f"{duration_s:.0f}",
                                     "period": f"exp({vph / 3600.0:.6f})", "departLane": "best", "departSpeed": "max"})
    if ambulance_depart_s is not None:
        # vehicles and flows must be sorted by departure: put the ambulance last with its own depart time
        ET.SubElement(root, "vehicle", {"id": "ambulance", "type": "ambulance", "route": "r_out",
                                        "depart": f"{ambulance_depart_s:.1f}", "departLane": "best", "departSpeed": "max"})
    ET.ElementTree(root).write(out)
    return out


def run(arterial: Arterial, routes: Path, additional: list[Path], seed: int, end_s: float, tag: str,
        signals_off: bool = False) -> dict:
    # SUMO stops by itself once every vehicle has arrived; end_s only bounds a gridlock
    """Run SUMO headless; per-group stats from tripinfo (``stops`` = SUMO's waitingCount)."""
    trip = arterial.workdir / f"trip_{tag}_{seed}.xml"
    cmd = [_bin("sumo"), "-n", str(arterial.net), "-r", str(routes), "--seed", str(seed), "--end", f"{end_s:.0f}",
           "--tripinfo-output", str(trip), "--no-step-log", "true", "--no-warnings", "true",
           "--step-length", "0.5", "--time-to-teleport", "-1"]
    if signals_off:
        cmd += ["--tls.all-off", "true"]
    if additional:
        cmd += ["-a", ",".join(str(a) for a in additional)]
    _run(cmd)
    return tripinfo_stats(trip)


def tripinfo_stats(path: Path) -> dict:
    groups: dict[str, dict[str, list[float]]] = {}
    for _, el in ET.iterparse(path):
        if el.tag != "tripinfo":
            continue
        vid = el.get("id")
        g = "ambulance" if vid == "ambulance" else vid.split(".")[0]
        g = "side" if g.startswith(("ns", "sn")) else "turn" if g.startswith("tj") else g
        d = groups.setdefault(g, {"travel_s": [], "delay_s": [], "stops": []})
        d["travel_s"].append(float(el.get("duration")))
        d["delay_s"].append(float(el.get("timeLoss")))
        d["stops"].append(float(el.get("waitingCount")))
        el.clear()
    return groups


def _run(cmd: list[str]) -> None:
    env = dict(os.environ, SUMO_HOME=sumo_home())
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"{Path(cmd[0]).name} failed: {res.stderr.strip()[-2000:]}")


def free_flow_speeds_kmh(arterial: Arterial, spec, volume_out_vph: float, volume_in_vph: float, seed: int = 99) -> tuple[float, float]:
    """Progression speeds as a probe fleet would measure them: the arterial traffic alone, signals off,
    mean route length / travel time per direction (the same number is given to every strategy)."""
    routes = write_routes(arterial, arterial.workdir / "calib.rou.xml", volume_out_vph, volume_in_vph,
                          [0.0] * arterial.n, 900)
    stats = run(arterial, routes, [], seed, 1500, "calib", signals_off=True)
    length = spec.intersections[-1].position_m - spec.intersections[0].position_m + 2 * APPROACH_M
    return (3.6 * length / float(np.mean(stats["out"]["travel_s"])),
            3.6 * length / float(np.mean(stats["in"]["travel_s"])))


def tls_coordinator_offsets(arterial: Arterial, volume_out_vph: float, volume_in_vph: float,
                            speed_factor: float, out: Path) -> Path:
    """SUMO's own tools/tlsCoordinator.py on the same net, with the arterial demand as routes.

    The tool reads ``<route edges=...>`` (edges first: it parses attributes positionally) and
    weighs each signal pair by how many routes use it, so routes are repeated in proportion to
    the directional volumes (per 100 veh/h).
    """
    root = ET.Element("routes")
    for edges, vph in ((arterial.out_edges(), volume_out_vph), (arterial.in_edges(), volume_in_vph)):
        for _ in range(max(1, int(round(vph / 100)))):
            ET.SubElement(root, "route", {"edges": " ".join(edges)})
    rfile = out.with_suffix(".rou.xml")
    ET.ElementTree(root).write(rfile)
    tool = Path(sumo_home()) / "tools" / "tlsCoordinator.py"
    _run([sys.executable, str(tool), "-n", str(arterial.net), "-r", str(rfile), "-o", str(out),
          "--speed-factor", f"{speed_factor}"])
    return out
