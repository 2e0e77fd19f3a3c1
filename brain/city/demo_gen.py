"""Generator of the shipped demo city (``brain/city/demo/``): deterministic, seeded.

The committed files ``city.yaml``, ``districts.geojson`` and ``cells.geojson`` are exactly this
script's output; edit the generator, never the files, and re-run::

    .venv/bin/python -m brain.city.demo_gen            # rewrites brain/city/demo/
    .venv/bin/python -m brain.city.demo_gen --out DIR  # writes elsewhere

"Demo City" (演示市) is fictional, laid out around [120.15, 30.27]: four districts tiled by
rectangular grid cells, a grid of expressways, arterials and secondary roads cut into directed
segments at every crossing, two signalised arterials (Jiefang Rd, Qiutao Rd) split into
250-800 m blocks, and a sensor registry covering every sensor type of
:data:`brain.city.model.SENSOR_FAMILY`. Geometry is built in local metres (x east, y north from
the south-west corner) and converted to WGS84.

Example:
    >>> data, districts, cells = build()
    >>> data["name"], len(data["districts"]), len(cells["features"]) >= 30
    ('Demo City', 4, True)
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import yaml

from brain.city.demo_layout import (
    CENTER,
    CITY_CODE,
    CORRIDORS,
    DISTRICTS,
    EW_ROADS,
    FREE_FLOW_KMH,
    HAZARDS,
    HEIGHT_M,
    KX,
    KY,
    LANES,
    LAT0,
    LON0,
    MINOR_STREETS,
    NS_ROADS,
    OWNERS,
    SEED,
    WIDTH_M,
)
from brain.city.geo import polyline_length_m


def to_lonlat(x: float, y: float) -> list[float]:
    return [round(LON0 + x / KX, 6), round(LAT0 + y / KY, 6)]


def _rect_ring(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [to_lonlat(x0, y0), to_lonlat(x1, y0), to_lonlat(x1, y1), to_lonlat(x0, y1), to_lonlat(x0, y0)]


def build(seed: int = SEED) -> tuple[dict, dict, dict]:
    """The demo city as ``(city.yaml data, districts FeatureCollection, cells FeatureCollection)``."""
    rng = np.random.default_rng(seed)

    # --- roads --------------------------------------------------------------------------------
    xs = [700.0 + float(rng.uniform(-150, 150))]
    for _ in NS_ROADS[1:]:
        xs.append(xs[-1] + float(rng.uniform(1500, 1750)))
    ys = [800.0 + float(rng.uniform(-150, 150))]
    for _ in EW_ROADS[1:]:
        ys.append(ys[-1] + float(rng.uniform(1500, 1750)))
    assert xs[-1] < WIDTH_M - 300 and ys[-1] < HEIGHT_M - 300

    # District split lines run between roads so no road lies on a district boundary.
    x_split = (xs[3] + xs[4]) / 2 + float(rng.uniform(-200, 200))
    y_split = (ys[2] + ys[3]) / 2 + float(rng.uniform(-200, 200))
    district_rects = {
        "nanhu": (0.0, 0.0, x_split, y_split),
        "gangkou": (x_split, 0.0, WIDTH_M, y_split),
        "xiyuan": (0.0, y_split, x_split, HEIGHT_M),
        "dongqiao": (x_split, y_split, WIDTH_M, HEIGHT_M),
    }

    # --- districts, streets, cells --------------------------------------------------------------
    districts, streets, cells = [], [], []
    district_features, cell_features = [], []
    cell_rects: list[tuple[str, str, tuple[float, float, float, float]]] = []
    noise_classes = ["1", "2", "3", "4a"]
    for did, dname, suffix, prefix, street_names, weights in DISTRICTS:
        x0, y0, x1, y1 = district_rects[did]
        districts.append({"id": did, "name": dname, "admin_code": CITY_CODE[:4] + suffix,
                          "center": to_lonlat((x0 + x1) / 2, (y0 + y1) / 2)})
        district_features.append(_feature(did, dname, [_rect_ring(x0, y0, x1, y1)]))
        n_cols = max(3, round((x1 - x0) / 1700))
        n_rows = max(3, round((y1 - y0) / 1700))
        # Streets own contiguous column bands of cells.
        bands = np.array_split(np.arange(n_cols), len(street_names))
        street_of_col = {}
        for k, (sname, band) in enumerate(zip(street_names, bands)):
            sid = f"{prefix}-S{k + 1}"
            streets.append({"id": sid, "name": sname, "district": did})
            for c in band:
                street_of_col[int(c)] = sid
        w, h = (x1 - x0) / n_cols, (y1 - y0) / n_rows
        k = 0
        for r in range(n_rows):
            for c in range(n_cols):
                k += 1
                cid = f"{prefix}-{k:02d}"
                cx0, cy0 = x0 + c * w, y0 + r * h
                rect = (cx0, cy0, cx0 + w, cy0 + h)
                crosses_expressway = any(cx0 < xs[i] < cx0 + w for i, r_ in enumerate(NS_ROADS) if r_[2] == "expressway") or any(
                    cy0 < ys[i] < cy0 + h for i, r_ in enumerate(EW_ROADS) if r_[2] == "expressway")
                noise = "4a" if crosses_expressway else noise_classes[int(rng.choice(4, p=weights))]
                cells.append({"id": cid, "district": did, "street": street_of_col[c],
                              "center": to_lonlat(cx0 + w / 2, cy0 + h / 2), "noise_class": noise})
                cell_features.append(_feature(cid, f"{dname} 网格 {cid}", [_rect_ring(*rect)]))
                cell_rects.append((cid, did, rect))

    def locate(x: float, y: float) -> tuple[str, str]:
        for cid, did, (cx0, cy0, cx1, cy1) in cell_rects:
            if cx0 <= x < cx1 and cy0 <= y < cy1:
                return did, cid
        raise AssertionError(f"point ({x:.0f}, {y:.0f}) outside every cell")

    # --- road nodes: crossings plus corridor blocks --------------------------------------------
    # node key (rounded x, y) -> name of the cross street there
    ew_nodes: dict[str, list[tuple[float, str]]] = {}
    ns_nodes: dict[str, list[tuple[float, str]]] = {}
    for (code, _, _), y in zip(EW_ROADS, ys):
        ew_nodes[code] = [(x, ns[1]) for ns, x in zip(NS_ROADS, xs)]
    for (code, _, _), x in zip(NS_ROADS, xs):
        ns_nodes[code] = [(y, ew[1]) for ew, y in zip(EW_ROADS, ys)]
    minor = iter(MINOR_STREETS)
    corridor_nodes: dict[str, list[tuple[float, str]]] = {}
    for cid, code, (i0, i1), blocks, _, _ in CORRIDORS:
        nodes = ew_nodes.get(code) or ns_nodes[code]
        chosen = nodes[i0:i1 + 1]
        extra = []
        for (p0, _), (p1, _) in zip(chosen, chosen[1:]):
            step = (p1 - p0) / blocks
            for b in range(1, blocks):
                extra.append((p0 + b * step + float(rng.uniform(-0.12, 0.12)) * step, next(minor)))
        nodes.extend(extra)
        nodes.sort()
        corridor_nodes[cid] = [n for n in nodes if chosen[0][0] <= n[0] <= chosen[-1][0]]

    roads = []  # (code, name, class, orientation, fixed coordinate, nodes)
    for (code, name, cls), y in zip(EW_ROADS, ys):
        roads.append((code, name, cls, "EW", y, ew_nodes[code]))
    for (code, name, cls), x in zip(NS_ROADS, xs):
        roads.append((code, name, cls, "NS", x, ns_nodes[code]))

    def xy(orient: str, fixed: float, pos: float) -> tuple[float, float]:
        return (pos, fixed) if orient == "EW" else (fixed, pos)

    # --- segments ------------------------------------------------------------------------------
    segments = []
    seg_xy: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {}
    incoming: dict[tuple[int, int], list[str]] = {}
    for code, name, cls, orient, fixed, nodes in roads:
        lanes_lo, lanes_hi = LANES[cls]
        lanes = int(rng.integers(lanes_lo, lanes_hi + 1))
        directions = ("E", "W") if orient == "EW" else ("N", "S")
        for k, ((p0, n0), (p1, n1)) in enumerate(zip(nodes, nodes[1:]), start=1):
            for d in directions:
                forward = d in ("E", "N")
                a, b = (xy(orient, fixed, p0), xy(orient, fixed, p1)) if forward else (xy(orient, fixed, p1), xy(orient, fixed, p0))
                frm, to = (n0, n1) if forward else (n1, n0)
                sid = f"{code}-{k:02d}{d}"
                line = [to_lonlat(*a), to_lonlat(*b)]
                length_m = round(polyline_length_m(line), 1)
                assert 200 <= length_m <= 2000, (sid, length_m)
                did, cid = locate((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
                ff = FREE_FLOW_KMH[cls] + float(rng.choice([-5.0, 0.0, 5.0])) * (cls == "arterial")
                segments.append({"id": sid, "name": f"{name} {d}B ({frm} → {to})", "district": did, "cell": cid,
                                 "road_class": cls, "length_m": length_m, "free_flow_kmh": ff, "lanes": lanes,
                                 "line": line})
                seg_xy[sid] = (a, b)
                incoming.setdefault((round(b[0]), round(b[1])), []).append(sid)

    # --- intersections and corridors -------------------------------------------------------------
    intersections, corridors = [], []
    road_by_code = {r[0]: r for r in roads}
    done: set[tuple[int, int]] = set()
    for cid, code, _, _, speed_out, speed_in in CORRIDORS:
        _, rname, _, orient, fixed, _ = road_by_code[code]
        ids, positions = [], []
        for k, (pos, cross) in enumerate(corridor_nodes[cid], start=1):
            x, y = xy(orient, fixed, pos)
            iid = f"{code}{k:02d}"
            major = cross not in MINOR_STREETS
            intersections.append(_intersection(rng, iid, f"{rname} / {cross}", x, y, locate, incoming,
                                               major=major, coordinated=True, main_dir=orient))
            done.add((round(x), round(y)))
            ids.append(iid)
            positions.append(x if orient == "EW" else y)
        positions_m = [round(p - positions[0], 1) for p in positions]
        # Local metres along a straight road: within a metre of the great-circle distances.
        corridors.append({"id": cid, "name": rname, "intersections": ids, "positions_m": positions_m,
                          "speed_out_kmh": speed_out, "speed_in_kmh": speed_in,
                          "cycle_min_s": 60.0, "cycle_max_s": 140.0})
    k = 0
    for (ecode, ename, ecls), y in zip(EW_ROADS, ys):
        for (ncode, nname, ncls), x in zip(NS_ROADS, xs):
            if ecls == "arterial" and ncls == "arterial" and (round(x), round(y)) not in done:
                k += 1
                intersections.append(_intersection(rng, f"X{k:02d}", f"{ename} / {nname}", x, y, locate, incoming,
                                                   major=True, coordinated=False, main_dir="EW"))

    # --- hazard sources -----------------------------------------------------------------------
    hazards = []
    hazard_sensor_plan = []
    for hid, hname, kind, did, unit, alarm_high, vrange, n_sensors in HAZARDS:
        x, y = _random_point(rng, district_rects[did], margin=400)
        _, cid = locate(x, y)
        lon, lat = to_lonlat(x, y)
        hazards.append({"id": hid, "name": hname, "kind": kind, "district": did, "cell": cid,
                        "lon": lon, "lat": lat, "alarm_high": alarm_high, "unit": unit})
        hazard_sensor_plan.append((hid, x, y, unit, vrange, n_sensors))

    # --- sensors --------------------------------------------------------------------------------
    sensors = []

    def add(sid: str, stype: str, x: float, y: float, unit: str, vmin: float, vmax: float, **extra) -> None:
        did, cid = locate(x, y)
        lon, lat = to_lonlat(x, y)
        rec = {"id": sid, "type": stype, "lon": lon, "lat": lat, "district": did, "cell": cid,
               "owner": extra.pop("owner", None) or OWNERS[stype], "unit": unit, "valid_min": vmin, "valid_max": vmax}
        rec.update({k: v for k, v in extra.items() if v is not None})
        sensors.append(rec)

    def along(sid: str, t: float) -> tuple[float, float]:
        (ax, ay), (bx, by) = seg_xy[sid]
        return ax + t * (bx - ax), ay + t * (by - ay)

    coordinated_approaches = {s for i in intersections if i["id"][0] != "X" for s in i["approach_segments"]}
    for seg in segments:
        sid, cls = seg["id"], seg["road_class"]
        vmax = 180.0 if cls == "expressway" else 150.0
        if cls in ("expressway", "arterial"):
            add(f"LP-{sid}", "loop", *along(sid, 0.8), "km/h", 0.0, vmax, segment=sid)
        if cls == "expressway":
            add(f"RD-{sid}", "radar", *along(sid, 0.5), "km/h", 0.0, vmax, segment=sid)
        if sid in coordinated_approaches:
            add(f"VD-{sid}", "video", *along(sid, 0.95), "km/h", 0.0, vmax, segment=sid)
        add(f"PB-{sid}", "probe", *along(sid, 0.5), "s", 1.0, 3600.0, segment=sid)

    city_rect = (0.0, 0.0, WIDTH_M, HEIGHT_M)
    ops_x, ops_y = WIDTH_M / 2 + 150, HEIGHT_M / 2 + 150  # the operations centre, near the city centre
    for did, *_ in DISTRICTS:
        for j in range(2):
            add(f"AQ-{did}-{j + 1}", "air", *_random_point(rng, district_rects[did], 300), "ug/m3", 0.0, 1000.0)
        add(f"WX-{did}", "weather", *_random_point(rng, district_rects[did], 300), "degC", -30.0, 50.0)
    n_noise = 0
    for cell_id, _, rect in cell_rects:
        if rng.random() < 0.65:
            n_noise += 1
            add(f"NS-{n_noise:02d}", "noise", *_random_point(rng, rect, 100), "dB(A)", 25.0, 130.0)
    for j in range(6):
        add(f"WQ-{j + 1:02d}", "water_quality", *_random_point(rng, city_rect, 500), "pH", 0.0, 14.0)
    for cell_id, _, rect in cell_rects:
        add(f"GI-{cell_id}", "grid_inspector", *_random_point(rng, rect, 100), "case", 0.0, 10000.0)
    add("HL-12345", "hotline_12345", ops_x, ops_y, "case", 0.0, 100000.0)
    add("APP-CITIZEN", "citizen_app", ops_x, ops_y, "case", 0.0, 100000.0)
    for j in range(10):
        nominal = float(round(rng.uniform(600, 2500), -1))
        add(f"PW-{j + 1:02d}", "utility_power", *_random_point(rng, city_rect, 500), "kW", 0.0, nominal * 3, nominal=nominal)
    for j in range(10):
        nominal = float(round(rng.uniform(280, 380)))
        add(f"WP-{j + 1:02d}", "utility_water", *_random_point(rng, city_rect, 500), "kPa", 0.0, 1000.0, nominal=nominal)
    for j in range(4):
        nominal = float(round(rng.uniform(300, 900), -1))
        add(f"WF-{j + 1:02d}", "utility_water", *_random_point(rng, city_rect, 500), "m3/h", 0.0, 3000.0, nominal=nominal)
    for j in range(8):
        nominal = float(round(rng.uniform(150, 300)))
        add(f"GS-{j + 1:02d}", "utility_gas", *_random_point(rng, city_rect, 500), "kPa", 0.0, 500.0, nominal=nominal)
    for j in range(6):
        nominal = float(round(rng.uniform(400, 600)))
        add(f"HT-{j + 1:02d}", "utility_heat", *_random_point(rng, district_rects["dongqiao"], 300), "kPa", 0.0, 1600.0, nominal=nominal)
    for utility, stype in (("power", "utility_power"), ("water", "utility_water"), ("gas", "utility_gas"), ("heat", "utility_heat")):
        add(f"OUT-{utility}", "utility_outage_feed", ops_x, ops_y, "customers", 0.0, 1_000_000.0, owner=OWNERS[stype])
    for sid, stype in (("CAD-110", "cad_police"), ("CAD-119", "cad_fire"), ("CAD-120", "cad_medical"), ("CAD-EM", "cad_emergency_mgmt")):
        add(sid, stype, ops_x, ops_y, "incident", 0.0, 100000.0)
    for hid, x, y, unit, (vmin, vmax), n_sensors in hazard_sensor_plan:
        for j in range(n_sensors):
            add(f"{hid}-{j + 1}", "hazard", x + float(rng.uniform(-40, 40)), y + float(rng.uniform(-40, 40)), unit, vmin, vmax, hazard=hid)

    data = {
        "name": "Demo City",
        "admin_code": CITY_CODE,
        "timezone": "Asia/Shanghai",
        "center": [CENTER[0], CENTER[1]],
        "districts": districts,
        "streets": streets,
        "cells": cells,
        "segments": segments,
        "intersections": intersections,
        "corridors": corridors,
        "hazards": hazards,
        "sensors": sensors,
        "health_weights": {"traffic": 0.25, "environment": 0.25, "grid": 0.15, "utilities": 0.1,
                           "emergency": 0.15, "sensors": 0.1},
    }
    fc = lambda feats: {"type": "FeatureCollection", "features": feats}  # noqa: E731
    return data, fc(district_features), fc(cell_features)


def _intersection(rng, iid, name, x, y, locate, incoming, *, major: bool, coordinated: bool, main_dir: str) -> dict:
    did, cid = locate(x, y)
    lon, lat = to_lonlat(x, y)
    main, cross = ("EW", "NS") if main_dir == "EW" else ("NS", "EW")
    # Pedestrian clearance: crossing ~4 lanes + median at 1.2 m/s; yellow 3 s at 40-55 km/h.
    phases = [{"name": f"{main} through", "min_green_s": float(rng.choice([15.0, 18.0, 20.0])),
               "ped_clearance_s": float(rng.choice([12.0, 14.0, 16.0])), "yellow_s": 3.0, "all_red_s": 2.0,
               "coordinated": coordinated}]
    if major:
        phases.append({"name": f"{main} left", "min_green_s": 8.0, "ped_clearance_s": 0.0, "yellow_s": 3.0, "all_red_s": 1.0,
                       "coordinated": False})
    phases.append({"name": f"{cross} through", "min_green_s": float(rng.choice([10.0, 12.0])),
                   "ped_clearance_s": float(rng.choice([14.0, 18.0, 20.0])), "yellow_s": 3.0, "all_red_s": 2.0,
                   "coordinated": False})
    if major:
        phases.append({"name": f"{cross} left", "min_green_s": 7.0, "ped_clearance_s": 0.0, "yellow_s": 3.0, "all_red_s": 1.0,
                       "coordinated": False})
    return {"id": iid, "name": name, "district": did, "cell": cid, "lon": lon, "lat": lat, "phases": phases,
            "approach_segments": sorted(incoming.get((round(x), round(y)), []))}


def _random_point(rng, rect, margin: float) -> tuple[float, float]:
    x0, y0, x1, y1 = rect
    return float(rng.uniform(x0 + margin, x1 - margin)), float(rng.uniform(y0 + margin, y1 - margin))


def _feature(fid: str, name: str, rings: list) -> dict:
    return {"type": "Feature", "properties": {"id": fid, "name": name},
            "geometry": {"type": "Polygon", "coordinates": rings}}


class _Dumper(yaml.SafeDumper):
    """Block style for records, flow style for coordinate pairs and short scalar lists."""


def _represent_list(dumper: yaml.SafeDumper, items: list):
    flat = all(not isinstance(v, (dict, list)) for v in items)
    pairs = all(isinstance(v, list) and all(not isinstance(u, (dict, list)) for u in v) for v in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=bool(items) and (flat or pairs))


_Dumper.add_representer(list, _represent_list)

HEADER = """\
# Demo City (演示市): a fictional city for CityBrain's simulator, tests and `citybrain run`.
# GENERATED by brain/city/demo_gen.py (seed {seed}); do not edit by hand. Edit the generator, then:
#     .venv/bin/python -m brain.city.demo_gen
# Coordinates are WGS84 [lon, lat]; area polygons are in districts.geojson and cells.geojson.
# Check with: citybrain city check brain/city/demo
"""

SECTION_NOTES = {
    "districts": "districts (区): admin_code is the GB/T 2260 code used in CAP identifiers",
    "streets": "streets / sub-district offices (街道): the lowest escalation tier",
    "cells": "city-management grid cells (网格); noise_class is the GB 3096-2008 acoustic zone",
    "segments": "directed road segments, split at every crossing (line runs in the travel direction)",
    "intersections": "signalised intersections; approach_segments are the segments ending there",
    "corridors": "signalised arterials for green waves; positions_m measured from the first intersection",
    "hazards": "major hazard sources (重大危险源) monitored by `hazard` sensors",
    "sensors": "the sensor registry (一终端一标识): every terminal that may send records",
}


def dump_yaml(data: dict) -> str:
    """``city.yaml`` text: header comment, scalars, then one commented block per section."""
    out = [HEADER.format(seed=SEED)]
    scalars = {k: v for k, v in data.items() if not isinstance(v, list) or k == "center"}
    body = {k: v for k, v in data.items() if k not in scalars}
    dump = lambda d: yaml.dump(d, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)  # noqa: E731
    out.append(dump({k: v for k, v in scalars.items() if k != "health_weights"}))
    for key, items in body.items():
        out.append(f"\n# --- {SECTION_NOTES.get(key, key)} ({len(items)})\n")
        out.append(dump({key: items}))
    if "health_weights" in scalars:
        out.append("\n# --- weights of the composite district health index (0-100)\n")
        out.append(dump({"health_weights": scalars["health_weights"]}))
    return "".join(out)


def dump_geojson(fc: dict) -> str:
    """GeoJSON text with one feature per line (diff-friendly)."""
    lines = [json.dumps(f, ensure_ascii=False, separators=(",", ":")) for f in fc["features"]]
    return '{"type":"FeatureCollection","features":[\n' + ",\n".join(lines) + "\n]}\n"


def dump_readme(data: dict, seed: int = SEED) -> str:
    """``README.md`` for the demo folder: layout, id conventions and counts, derived from ``data``."""
    from collections import Counter

    lines = [
        f"# {data['name']} (演示市) — the shipped demo city",
        "",
        f"Generated by `brain/city/demo_gen.py` (seed {seed}); do not edit these files by hand. Edit the generator, then run",
        "`.venv/bin/python -m brain.city.demo_gen` (a test checks the committed files are its exact output).",
        "",
        f"Fictional city code {data['admin_code']}, time zone {data['timezone']}, centre {data['center']} (WGS84 lon, lat),",
        f"about {WIDTH_M / 1000:g} km x {HEIGHT_M / 1000:g} km. Check it with `citybrain city check`, summarise it with",
        "`citybrain city show`, draw it with `citybrain city show --map demo.png`.",
        "",
        "| district | admin code | streets | cells | segments | intersections | sensors |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in data["districts"]:
        n = {k: sum(x.get("district") == d["id"] for x in data[k]) for k in ("streets", "cells", "segments", "intersections", "sensors")}
        lines.append(f"| {d['id']} ({d['name']}) | {d['admin_code']} | {n['streets']} | {n['cells']} | {n['segments']} "
                     f"| {n['intersections']} | {n['sensors']} |")
    lines += ["", "## Roads", "",
              "Directed segments between consecutive crossings; id `<road code>-<block><direction>`, e.g. `JF-03E` is the third",
              "eastbound block of Jiefang Rd. Every segment has a probe feed `PB-<segment>`; arterials and expressways have a loop",
              "`LP-<segment>`, expressways a radar `RD-<segment>`, approaches to corridor intersections a video detector `VD-<segment>`.",
              "", "| code | road | class | free-flow km/h (arterial blocks vary ±5) |", "|---|---|---|---|"]
    for code, name, cls in EW_ROADS + NS_ROADS:
        lines.append(f"| {code} | {name} | {cls} | {FREE_FLOW_KMH[cls]:g} |")
    lines += ["", "## Signalised corridors (green waves)", ""]
    for c in data["corridors"]:
        gaps = [b - a for a, b in zip(c["positions_m"], c["positions_m"][1:])]
        lines.append(f"- `{c['id']}` ({c['name']}): {len(c['intersections'])} intersections `{c['intersections'][0]}`..`{c['intersections'][-1]}` "
                     f"over {c['positions_m'][-1]:.0f} m (spacing {min(gaps):.0f}-{max(gaps):.0f} m), progression "
                     f"{c['speed_out_kmh']:g} km/h outbound / {c['speed_in_kmh']:g} km/h inbound, cycle {c['cycle_min_s']:g}-{c['cycle_max_s']:g} s.")
    lines += ["", "## Sensor registry", "", "| type | count | owner | unit | example id |", "|---|---|---|---|---|"]
    by_type: dict[str, list[dict]] = {}
    for sensor in data["sensors"]:
        by_type.setdefault(sensor["type"], []).append(sensor)
    for stype, items in by_type.items():
        owners = ", ".join(Counter(x["owner"] for x in items))
        units = ", ".join(Counter(x["unit"] for x in items))
        lines.append(f"| {stype} | {len(items)} | {owners} | {units} | `{items[0]['id']}` |")
    lines += ["", "## Hazard sources", ""]
    for h in data["hazards"]:
        n = sum(x.get("hazard") == h["id"] for x in data["sensors"])
        lines.append(f"- `{h['id']}` {h['name']} ({h['kind']}, {h['district']}): alarm above {h['alarm_high']:g} {h['unit']}, {n} sensors.")
    noise = Counter(c["noise_class"] for c in data["cells"])
    lines += ["", "Grid-cell noise classes (GB 3096-2008): " + ", ".join(f"class {k}: {v}" for k, v in sorted(noise.items())) + ".", ""]
    return "\n".join(lines)


def write(out_dir: Path, seed: int = SEED) -> None:
    """Write ``city.yaml``, ``districts.geojson``, ``cells.geojson`` and ``README.md`` into ``out_dir``."""
    data, districts, cells = build(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "README.md").write_text(dump_readme(data, seed), encoding="utf-8")
    (out_dir / "city.yaml").write_text(dump_yaml(data), encoding="utf-8")
    (out_dir / "districts.geojson").write_text(dump_geojson(districts), encoding="utf-8")
    (out_dir / "cells.geojson").write_text(dump_geojson(cells), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the CityBrain demo city (deterministic).")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("demo"), help="output folder (default: the shipped demo)")
    args = parser.parse_args(argv)
    write(args.out)
    print(f"wrote demo city to {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
