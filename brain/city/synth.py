"""Synthetic cities of any size (``citybrain city generate``): for scale benches and load tests.

A generated city is a valid city folder (``city.yaml``, ``districts.geojson``, ``cells.geojson``)
that :func:`brain.city.load_city` accepts, with exactly ``sensors`` terminals in ``districts``
districts, the sensor mix of a real city (about the demo city's shares): traffic detectors on a
road grid (a probe on every directed segment, a loop on arterials and expressways, a radar on
expressways), a grid inspector per grid cell, air, weather, water quality, utility lifelines,
case feeds (12345, citizen app), emergency dispatch (CAD) feeds and hazard sources, and a signalised
green-wave corridor along each district's first arterial; noise monitors
take up the remainder so the count is exact. Each district is a square of its own road grid
(roads every ``ROAD_SPACING_M``) tiled by square grid cells; districts are laid out in a grid
around ``CENTER``. The same arguments always give the same bytes.

Unlike :mod:`brain.city.demo_gen` (one hand-tuned city), layout is arithmetic: the cell of a
point is computed, never searched, so 50k sensors are generated in seconds. ``city.yaml`` is
written as YAML whose records are JSON-style flow mappings, one per line (valid YAML, and what a
machine-written registry looks like).

Example:
    >>> data, districts, cells = build(sensors=2_000, districts=4, seed=1)
    >>> len(data["sensors"]), len(data["districts"]), len(districts["features"])
    (2000, 4, 4)
    >>> from brain.city import city_from_data
    >>> city = city_from_data(data, districts, cells)
    >>> sorted({s.family for s in city.sensors})
    ['emergency', 'environment', 'grid', 'traffic']
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from brain.city.demo_layout import OWNERS
from brain.city.geo import EARTH_RADIUS_M

CENTER = (114.06, 22.55)
CITY_CODE = "449900"  # fictional: 44 = Guangdong; 99 is unused by GB/T 2260
ROAD_SPACING_M = 450.0
MAX_DISTRICTS = 98  # district codes 01..98 under the city's code (a code may not end in 00)
#: Shares of the sensor budget (the rest of the mix is fixed per district or per city).
TRAFFIC_SHARE = 0.66
CELL_SHARE = 0.08
AIR_PER_DISTRICT_SHARE = 0.015
UTILITY_SHARE = 0.08
MIN_SENSORS_PER_DISTRICT = 150
CORRIDOR_SIGNALS = 6  # signalised crossings on each district's corridor

KX = math.cos(math.radians(CENTER[1])) * math.pi / 180 * EARTH_RADIUS_M  # metres per degree of longitude
KY = math.pi / 180 * EARTH_RADIUS_M


class SynthError(ValueError):
    """Arguments that cannot make a valid city; the message says which and why.

    >>> try:
    ...     build(sensors=10, districts=4)
    ... except SynthError as exc:
    ...     print(exc)
    10 sensors cannot equip 4 districts: give at least 600 (150 per district)
    """


def _road_class(j: int, k: int) -> str:
    return "expressway" if j == k // 2 else ("arterial" if j % 4 == 1 else "secondary")


def _traffic_sensors(k: int) -> int:
    """Traffic detectors of a k x k road grid: per directed block a probe, a loop off secondary
    roads, a radar on the expressway."""
    per_road = {"expressway": 3, "arterial": 2, "secondary": 1}
    return 2 * sum(2 * (k - 1) * per_road[_road_class(j, k)] for j in range(k))


def _lonlat(x: float, y: float, x0: float, y0: float) -> list[float]:
    return [round(CENTER[0] + (x - x0) / KX, 6), round(CENTER[1] + (y - y0) / KY, 6)]


def _ring(rect, x0, y0) -> list[list[float]]:
    a, b, c, d = rect
    return [_lonlat(a, b, x0, y0), _lonlat(c, b, x0, y0), _lonlat(c, d, x0, y0), _lonlat(a, d, x0, y0), _lonlat(a, b, x0, y0)]


def build(sensors: int, districts: int, seed: int = 0) -> tuple[dict, dict, dict]:
    """``(city.yaml data, districts FeatureCollection, cells FeatureCollection)`` (see the module docstring)."""
    if not 1 <= districts <= MAX_DISTRICTS:
        raise SynthError(f"--districts must be between 1 and {MAX_DISTRICTS}, got {districts}")
    if sensors < MIN_SENSORS_PER_DISTRICT * districts:
        raise SynthError(f"{sensors} sensors cannot equip {districts} districts: give at least "
                         f"{MIN_SENSORS_PER_DISTRICT * districts} ({MIN_SENSORS_PER_DISTRICT} per district)")
    rng = np.random.default_rng(seed)
    per_district = sensors / districts
    m = max(2, round(math.sqrt(CELL_SHARE * per_district)))  # m x m cells per district
    # The largest k x k road grid whose traffic detectors fit the traffic share (and the whole
    # fixed mix the district's budget); noise monitors fill what is left.
    k = 3
    while _traffic_sensors(k + 1) <= TRAFFIC_SHARE * per_district:
        k += 1
    fixed = m * m + max(2, round(AIR_PER_DISTRICT_SHARE * per_district)) + 2 + max(4, round(UTILITY_SHARE * per_district)) + 2 + 10
    if _traffic_sensors(k) + fixed > math.floor(per_district):
        raise SynthError(f"{sensors} sensors cannot equip {districts} districts: give at least "
                         f"{(_traffic_sensors(3) + fixed) * districts} for this many districts")
    side = (k + 1) * ROAD_SPACING_M
    cols = math.ceil(math.sqrt(districts))
    rows = math.ceil(districts / cols)
    if math.hypot(cols * side, rows * side) / 2 > 45_000:
        raise SynthError(f"{sensors} sensors in {districts} districts would spread more than 45 km from the centre; "
                         "use more districts per area or fewer sensors")
    x_mid, y_mid = cols * side / 2, rows * side / 2

    out_districts, streets, cells, segments, hazards, registry = [], [], [], [], [], []
    intersections: list[dict] = []
    corridors: list[dict] = []
    district_features, cell_features = [], []

    def lonlat(x: float, y: float) -> list[float]:
        return _lonlat(x, y, x_mid, y_mid)

    def add(sid: str, stype: str, x: float, y: float, did: str, cell_of, unit: str, vmin: float, vmax: float, **extra) -> None:
        lon, lat = lonlat(x, y)
        rec = {"id": sid, "type": stype, "lon": lon, "lat": lat, "district": did, "cell": cell_of(x, y),
               "owner": OWNERS.get(stype, "城市运行管理中心"), "unit": unit, "valid_min": vmin, "valid_max": vmax}
        rec.update({key: v for key, v in extra.items() if v is not None})
        registry.append(rec)

    for n in range(districts):
        did = f"d{n + 1:02d}"
        dx0, dy0 = (n % cols) * side, (n // cols) * side
        rect = (dx0, dy0, dx0 + side, dy0 + side)
        out_districts.append({"id": did, "name": f"第{n + 1}区 District {n + 1}", "admin_code": CITY_CODE[:4] + f"{n + 1:02d}",
                              "center": lonlat(dx0 + side / 2, dy0 + side / 2)})
        district_features.append({"type": "Feature", "properties": {"id": did, "name": f"District {n + 1}"},
                                  "geometry": {"type": "Polygon", "coordinates": [_ring(rect, x_mid, y_mid)]}})
        n_streets = min(3, m)
        street_of_col = [f"{did}-s{1 + c * n_streets // m}" for c in range(m)]
        for s in range(n_streets):
            streets.append({"id": f"{did}-s{s + 1}", "name": f"{n + 1}区第{s + 1}街道", "district": did})
        cw = side / m
        for r in range(m):
            for c in range(m):
                cid = f"{did}-c{r * m + c + 1:03d}"
                crect = (dx0 + c * cw, dy0 + r * cw, dx0 + (c + 1) * cw, dy0 + (r + 1) * cw)
                cells.append({"id": cid, "district": did, "street": street_of_col[c],
                              "center": lonlat(crect[0] + cw / 2, crect[1] + cw / 2),
                              "noise_class": ["1", "2", "2", "3", "4a"][int(rng.integers(5))]})
                cell_features.append({"type": "Feature", "properties": {"id": cid, "name": f"网格 {cid}"},
                                      "geometry": {"type": "Polygon", "coordinates": [_ring(crect, x_mid, y_mid)]}})

        def cell_of(x: float, y: float, dx0=dx0, dy0=dy0, did=did, cw=cw) -> str:
            c = min(m - 1, max(0, int((x - dx0) // cw)))
            r = min(m - 1, max(0, int((y - dy0) // cw)))
            return f"{did}-c{r * m + c + 1:03d}"

        # Roads at ROAD_SPACING_M from the district's edge; every 4th an arterial, the middle one an expressway.
        pos = [dx0 + (j + 1) * ROAD_SPACING_M for j in range(k)], [dy0 + (j + 1) * ROAD_SPACING_M for j in range(k)]
        budget = round(per_district) if n < districts - 1 else sensors - len(registry) - 0
        start = len(registry)
        for orient in ("EW", "NS"):
            for j in range(k):
                cls = _road_class(j, k)
                ff = {"expressway": 80.0, "arterial": 55.0, "secondary": 40.0}[cls]
                lanes = {"expressway": 3, "arterial": 2, "secondary": 1}[cls]
                fixed = (pos[1] if orient == "EW" else pos[0])[j]
                along = pos[0] if orient == "EW" else pos[1]
                for i in range(k - 1):
                    for d in ((("E", "W") if orient == "EW" else ("N", "S"))):
                        p0, p1 = (along[i], along[i + 1]) if d in ("E", "N") else (along[i + 1], along[i])
                        a, b = ((p0, fixed), (p1, fixed)) if orient == "EW" else ((fixed, p0), (fixed, p1))
                        sid = f"{did}-{orient}{j:02d}-{i:02d}{d}"
                        mx, my = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
                        segments.append({"id": sid, "name": f"{did} {orient} road {j} block {i} {d}B", "district": did,
                                         "cell": cell_of(mx, my), "road_class": cls, "length_m": ROAD_SPACING_M,
                                         "free_flow_kmh": ff, "lanes": lanes, "line": [lonlat(*a), lonlat(*b)]})
                        vmax = 180.0 if cls == "expressway" else 150.0
                        add(f"PB-{sid}", "probe", mx, my, did, cell_of, "s", 1.0, 3600.0, segment=sid)
                        if cls != "secondary":
                            add(f"LP-{sid}", "loop", a[0] + 0.8 * (b[0] - a[0]), a[1] + 0.8 * (b[1] - a[1]), did, cell_of,
                                "km/h", 0.0, vmax, segment=sid)
                        if cls == "expressway":
                            add(f"RD-{sid}", "radar", mx + 1, my + 1, did, cell_of, "km/h", 0.0, vmax, segment=sid)

        # One signalised corridor per district along its first arterial east-west road (up to
        # CORRIDOR_SIGNALS crossings), with each crossing's four approach blocks.
        arterials = [j for j in range(k) if _road_class(j, k) == "arterial"]
        if arterials:
            j = arterials[0]
            y = pos[1][j]
            ids = []
            for i in range(min(k, CORRIDOR_SIGNALS)):
                x = pos[0][i]
                approaches = [f"{did}-EW{j:02d}-{i - 1:02d}E" if i > 0 else None, f"{did}-EW{j:02d}-{i:02d}W" if i < k - 1 else None,
                              f"{did}-NS{i:02d}-{j - 1:02d}N" if j > 0 else None, f"{did}-NS{i:02d}-{j:02d}S" if j < k - 1 else None]
                iid = f"{did}-X{i + 1:02d}"
                lon, lat = lonlat(x, y)
                intersections.append({
                    "id": iid, "name": f"{did} arterial {j} / road {i}", "district": did, "cell": cell_of(x, y), "lon": lon, "lat": lat,
                    "phases": [
                        {"name": "EW through", "min_green_s": 15.0, "ped_clearance_s": 14.0, "yellow_s": 3.0, "all_red_s": 2.0, "coordinated": True},
                        {"name": "NS through", "min_green_s": 10.0, "ped_clearance_s": 18.0, "yellow_s": 3.0, "all_red_s": 2.0, "coordinated": False},
                    ],
                    "approach_segments": sorted(a for a in approaches if a)})
                ids.append(iid)
            corridors.append({"id": f"{did}-corridor", "name": f"{did} arterial {j}", "intersections": ids,
                              "positions_m": [round(i * ROAD_SPACING_M, 1) for i in range(len(ids))],
                              "speed_out_kmh": 45.0, "speed_in_kmh": 45.0, "cycle_min_s": 60.0, "cycle_max_s": 140.0})

        def point(margin: float = 100.0) -> tuple[float, float]:
            return float(rng.uniform(dx0 + margin, dx0 + side - margin)), float(rng.uniform(dy0 + margin, dy0 + side - margin))

        for r in range(m):
            for c in range(m):
                add(f"GI-{did}-c{r * m + c + 1:03d}", "grid_inspector", dx0 + (c + 0.5) * cw, dy0 + (r + 0.5) * cw, did, cell_of,
                    "case", 0.0, 10000.0)
        for j in range(max(2, round(AIR_PER_DISTRICT_SHARE * per_district))):
            add(f"AQ-{did}-{j + 1}", "air", *point(), did, cell_of, "ug/m3", 0.0, 1000.0)
        add(f"WX-{did}", "weather", *point(), did, cell_of, "degC", -30.0, 50.0)
        add(f"WQ-{did}", "water_quality", *point(), did, cell_of, "pH", 0.0, 14.0)
        n_util = max(4, round(UTILITY_SHARE * per_district))
        for j in range(n_util):
            kind = ("power", "water", "gas", "heat")[j % 4]
            if kind == "power":
                nominal = float(round(rng.uniform(600, 2500), -1))
                add(f"PW-{did}-{j + 1}", "utility_power", *point(), did, cell_of, "kW", 0.0, nominal * 3, nominal=nominal)
            elif kind == "water":
                nominal = float(round(rng.uniform(280, 380)))
                add(f"WP-{did}-{j + 1}", "utility_water", *point(), did, cell_of, "kPa", 0.0, 1000.0, nominal=nominal)
            elif kind == "gas":
                nominal = float(round(rng.uniform(150, 300)))
                add(f"GS-{did}-{j + 1}", "utility_gas", *point(), did, cell_of, "kPa", 0.0, 500.0, nominal=nominal)
            else:
                nominal = float(round(rng.uniform(400, 600)))
                add(f"HT-{did}-{j + 1}", "utility_heat", *point(), did, cell_of, "kPa", 0.0, 1600.0, nominal=nominal)
        hx, hy = point(400.0)
        hid = f"HZ-{did}"
        hazards.append({"id": hid, "name": f"{n + 1}区储气站 gas depot {n + 1}", "kind": "lng_storage", "district": did,
                        "cell": cell_of(hx, hy), "lon": lonlat(hx, hy)[0], "lat": lonlat(hx, hy)[1], "alarm_high": 90.0, "unit": "%"})
        for j in range(2):
            add(f"{hid}-{j + 1}", "hazard", hx + float(rng.uniform(-40, 40)), hy + float(rng.uniform(-40, 40)), did, cell_of,
                "%", 0.0, 100.0, hazard=hid)
        if n == 0:  # the city-wide feeds, at the operations centre in the first district
            ox, oy = dx0 + side / 2 + 17, dy0 + side / 2 + 17
            for sid, stype, unit, vmax, owner in (
                ("HL-12345", "hotline_12345", "case", 100000.0, None), ("APP-CITIZEN", "citizen_app", "case", 100000.0, None),
                ("CAD-110", "cad_police", "incident", 100000.0, None), ("CAD-119", "cad_fire", "incident", 100000.0, None),
                ("CAD-120", "cad_medical", "incident", 100000.0, None), ("CAD-EM", "cad_emergency_mgmt", "incident", 100000.0, None),
                *((f"OUT-{u}", "utility_outage_feed", "customers", 1_000_000.0, OWNERS[t]) for u, t in (
                    ("power", "utility_power"), ("water", "utility_water"), ("gas", "utility_gas"), ("heat", "utility_heat"))),
            ):
                add(sid, stype, ox, oy, did, cell_of, unit, 0.0, vmax)
                if owner:
                    registry[-1]["owner"] = owner
        # Noise monitors fill the district's share so the city's count comes out exact.
        fill = (budget - (len(registry) - start)) if n < districts - 1 else sensors - len(registry)
        if fill < 0:
            raise SynthError(f"{sensors} sensors are too few for {districts} districts of this layout; give more sensors")
        for j in range(fill):
            add(f"NS-{did}-{j + 1}", "noise", *point(), did, cell_of, "dB(A)", 25.0, 130.0)

    data = {
        "name": f"Synthetic City {sensors} ({seed})",
        "admin_code": CITY_CODE,
        "timezone": "Asia/Shanghai",
        "center": [CENTER[0], CENTER[1]],
        "districts": out_districts,
        "streets": streets,
        "cells": cells,
        "segments": segments,
        "intersections": intersections,
        "corridors": corridors,
        "hazards": hazards,
        "sensors": registry,
    }
    fc = lambda feats: {"type": "FeatureCollection", "features": feats}  # noqa: E731
    return data, fc(district_features), fc(cell_features)


def _flow(value) -> str:
    # JSON is a subset of YAML's flow style; floats always carry a '.' or an exponent with a
    # '.' (Python's repr), which YAML 1.1 resolvers read as floats too.
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def dump_yaml(data: dict, seed: int) -> str:
    """``city.yaml`` text: scalars in block style, then each section as one flow mapping per line."""
    lines = [f"# Synthetic city generated by `citybrain city generate` (brain/city/synth.py, seed {seed}).",
             "# Check with: citybrain city check <this folder>"]
    for key, value in data.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"{key}:  # {len(value)}")
            lines.extend(f"- {_flow(item)}" for item in value)
        else:
            lines.append(f"{key}: {_flow(value)}")
    return "\n".join(lines) + "\n"


def write(out_dir: str | Path, sensors: int, districts: int, seed: int = 0) -> dict[str, int]:
    """Write the city folder; returns counts per section."""
    data, district_fc, cell_fc = build(sensors, districts, seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "city.yaml").write_text(dump_yaml(data, seed), encoding="utf-8")
    (out / "districts.geojson").write_text(json.dumps(district_fc, ensure_ascii=False), encoding="utf-8")
    (out / "cells.geojson").write_text(json.dumps(cell_fc, ensure_ascii=False), encoding="utf-8")
    return {k: len(v) for k, v in data.items() if isinstance(v, list) and k != "center"}
