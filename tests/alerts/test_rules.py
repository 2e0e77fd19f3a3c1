import json
from pathlib import Path

import polars as pl
import pytest

from brain.alerts.rules import (RuleEngine, RuleError, check_packs, default_rules_dir, load_rule_packs, parse_rule_pack,
                                rule_columns, rule_schema)

M = 60_000


def engine(yaml_rules: str, **kw) -> RuleEngine:
    return RuleEngine([parse_rule_pack("pack: t\nrules:\n" + yaml_rules)], **kw)


def ids(cands):
    return sorted((c.rule_id, c.labels.get("segment_id") or c.labels.get("sensor_id") or c.labels.get("district") or
                   c.labels.get("cell", ""), c.trigger) for c in cands)


# --- schema and shipped packs -----------------------------------------------------------------------

def _meaning(node):
    """The schema with every text's whitespace folded: msgspec versions indent docstrings differently,
    which changes no field, type, bound or word."""
    if isinstance(node, dict):
        return {k: _meaning(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_meaning(v) for v in node]
    if isinstance(node, str):
        return " ".join(node.split())
    return node


def test_shipped_schema_matches_the_types():
    shipped = json.loads((default_rules_dir() / "schema.json").read_text())
    assert _meaning(shipped) == _meaning(json.loads(json.dumps(rule_schema())))


def test_schema_comparison_sees_a_changed_field():
    generated = json.loads(json.dumps(rule_schema()))
    changed = json.loads(json.dumps(generated))
    name, definition = next((k, v) for k, v in changed["$defs"].items() if v.get("properties"))
    definition["properties"].pop(next(iter(definition["properties"])))
    assert _meaning(changed) != _meaning(generated), name


def test_default_packs_load_and_cover_every_family():
    packs = load_rule_packs(default_rules_dir())
    names = {p.pack for p in packs}
    assert {"traffic", "environment", "grid", "utilities", "emergency", "sensor_health"} <= names
    kinds = {r.kind for p in packs for r in p.rules}
    assert kinds == {"threshold", "rate", "absence", "anomaly", "multipoint", "composite"}


def test_default_packs_read_only_columns_the_driver_tables_have():
    """Each rule's table/columns must exist in what ``citybrain run`` passes (vital signs, per-window
    frames, pass-through tables, anomaly scores) after registry enrichment."""
    from brain.alerts.enrich import driver_table_columns
    from brain.city import demo_city_path, load_city

    available = driver_table_columns(load_city(demo_city_path()))
    assert {"segment_traffic", "air_station", "noise_sensor", "utility_sensor", "grid_cell", "emergency",
            "sensor_health", "district", "cases", "incidents", "sensor_last_seen", "hazard_sensor"} <= set(available)
    for pack in load_rule_packs(default_rules_dir()):
        for rule in pack.rules:
            for table, cols in rule_columns(rule).items():
                assert table in available, f"{rule.id}: no table {table}"
                assert cols <= available[table], f"{rule.id}: {table} lacks {sorted(cols - available[table])}"


@pytest.mark.parametrize("text, msg", [
    ("pack: x\nrules: [{id: a, kind: threshold, table: t, value: v, op: '>>', threshold: 1, severity: red}]", "'a'.*op"),
    ("pack: x\nrules: [{id: a, kind: threshold, table: t, value: v, op: '>', threshold: 1, severity: purple}]", "severity"),
    ("pack: x\nrules: [{id: a, kind: threshold, table: t, value: 'v +* 2', op: '>', threshold: 1, severity: red}]", "SQL"),
    ("pack: x\nrules: [{id: a, kind: threshold, table: t, value: v, op: '>', threshold: 1, clear: 2, severity: red}]", "clear"),
    ("pack: x\nrules: [{id: a, kind: threshold, table: t, value: v, op: '>', threshold: 1, severity: red, for: soon}]", "duration"),
    ("pack: x\nrules: [{id: a, kind: magic, severity: red}]", "kind"),
    ("pack: x\nrules: [{id: a, kind: threshold, table: t, value: v, op: '>', threshold: 1, severity: red, colour: x}]", "colour"),
    ("pack: x\nrules: [{id: a, kind: multipoint, signals: [], group_by: cell_id, severity: red}]", "signal"),
    ("pack: x\nrules: [{id: a, kind: multipoint, signals: [{table: t, value: v, op: '>', threshold: 1}], severity: red}]", "group_by"),
    ("pack: x\nrules: [{id: a, kind: rate, table: t, value: v, op: '>', threshold: 1, severity: red}]", "labels_from"),
    ("pack: x\nrules: [{id: a, kind: absence, table: t, after: 0s, labels_from: [k], severity: red}]", "after"),
    ("pack: x\nrules: [{id: a, kind: composite, op: and, of: [b], severity: red}]", "two rules"),
    ("pack: x\nrules:\n - {id: a, kind: anomaly, threshold: 1, severity: red}\n - {id: a, kind: anomaly, threshold: 1, severity: red}", "duplicate"),
    ("pack: x\nrules: []\ninhibit: [{source: ['x'], target: ['a=b']}]", "inhibit"),
    ("pack: x\nrules: []\ncorrelate: [{source: ['a=b'], target: ['c=d']}]", "correlate.*equal"),
    ("pack: x\nrules: []\ncorrelate: [{source: ['a=b'], target: ['c=d'], within_m: 0}]", "correlate.*within_m"),
    ("pack: x\nrules: [{id: a, kind: anomaly, threshold: 1, severity: red, digest: sometimes}]", "digest"),
    ("pack: x\nrules: [{id: a, kind: anomaly, threshold: 1, severity: red, digest: 0s}]", "digest"),
    ("pack: [unclosed", "YAML"),
    ("- just a list", "mapping"),
])
def test_bad_packs_are_rejected_with_a_clear_message(text, msg):
    with pytest.raises(RuleError, match=msg):
        parse_rule_pack(text, "bad.yaml")


def test_composite_must_refer_to_known_rules_across_packs():
    a = parse_rule_pack("pack: a\nrules: [{id: c, kind: composite, op: or, of: [x, y], severity: red}]")
    with pytest.raises(RuleError, match="unknown"):
        check_packs([a])
    b = parse_rule_pack("pack: b\nrules: [{id: x, kind: anomaly, threshold: 1, severity: red},"
                        " {id: y, kind: anomaly, threshold: 1, severity: red}]")
    check_packs([a, b])
    with pytest.raises(RuleError, match="already defined"):
        check_packs([b, b])


def test_pack_defaults_apply_and_rule_values_win():
    p = parse_rule_pack("pack: a\ndefaults: {labels: {category: traffic, team: x}, for: 5m}\nrules:\n"
                        " - {id: r1, kind: anomaly, threshold: 1, severity: red}\n"
                        " - {id: r2, kind: anomaly, threshold: 1, severity: red, for: 1m, labels: {team: y}}")
    r1, r2 = p.rules
    assert (r1._for_ms, r1.labels) == (5 * M, {"category": "traffic", "team": "x"})
    assert (r2._for_ms, r2.labels) == (M, {"category": "traffic", "team": "y"})


# --- evaluation -------------------------------------------------------------------------------------

THRESH = """
 - id: jam
   kind: threshold
   table: seg
   value: tti
   op: ">="
   threshold: 2.0
   clear: 1.7
   severity: yellow
   labels: {category: traffic}
   labels_from: [segment_id, cell_id]
   summary: "TTI {value:.1f} on {segment_id} ({unknown})"
"""


def test_threshold_with_hysteresis_marks_trigger_and_hold_rows():
    eng = engine(THRESH)
    seg = pl.DataFrame({"segment_id": ["a", "b", "c", "d"], "cell_id": ["C1"] * 4, "tti": [2.0, 1.9, 1.6, None]})
    got = eng.evaluate({"seg": seg}, 0)
    assert ids(got) == [("jam", "a", True), ("jam", "b", False)]
    a = next(c for c in got if c.labels["segment_id"] == "a")
    assert a.labels == {"rule": "jam", "category": "traffic", "segment_id": "a", "cell": "C1"}
    assert a.summary == "TTI 2.0 on a ({unknown})" and a.evidence["threshold"] == 2.0 and a.severity == 3


def test_missing_table_is_quiet_and_missing_column_is_reported_not_raised():
    eng = engine(THRESH)
    assert eng.evaluate({}, 0) == [] and eng.errors == {}
    assert eng.evaluate({"seg": pl.DataFrame({"segment_id": ["a"], "speed": [3.0]})}, 0) == []
    assert "tti" in eng.errors["jam"]
    eng.evaluate({"seg": pl.DataFrame({"segment_id": ["a"], "cell_id": ["C"], "tti": [1.0]})}, 0)
    assert eng.errors == {}


def test_where_and_string_equality_and_severity_from_column():
    eng = engine("""
 - id: inc
   kind: threshold
   table: incidents
   value: severity
   op: "<="
   threshold: 3
   where: "status != 'closed'"
   severity_from: severity
   severity: yellow
   labels_from: [incident_id]
""")
    inc = pl.DataFrame({"incident_id": ["i1", "i2", "i3", "i4"], "severity": [1, 2, 4, 1],
                        "status": ["on_scene", "reported", "reported", "closed"]})
    got = {c.labels["incident_id"]: c.severity for c in eng.evaluate({"incidents": inc}, 0)}
    assert got == {"i1": 1, "i2": 2}


def test_rate_rule_compares_consecutive_windows_per_key():
    eng = engine("""
 - id: drop
   kind: rate
   table: seg
   value: speed_kmh
   op: "<="
   threshold: -40
   mode: pct
   per: 5m
   severity: yellow
   labels_from: [segment_id]
""")
    w1 = pl.DataFrame({"segment_id": ["a", "b", "c"], "speed_kmh": [50.0, 50.0, 0.0]})
    w2 = pl.DataFrame({"segment_id": ["a", "b", "c"], "speed_kmh": [25.0, 40.0, 10.0]})
    assert eng.evaluate({"seg": w1}, 0) == []
    # 5 minutes later: a fell 50 % (rate -50 %/5 min), b fell 20 %, c from 0 is undefined
    got = eng.evaluate({"seg": w2}, 5 * M)
    assert [(c.labels["segment_id"], c.value) for c in got] == [("a", -50.0)]
    # over 10 minutes the same fall is only -25 % per 5 min: no alert
    eng2 = engine("""
 - {id: drop, kind: rate, table: seg, value: speed_kmh, op: "<=", threshold: -40, mode: pct, per: 5m, severity: yellow, labels_from: [segment_id]}
""")
    eng2.evaluate({"seg": w1}, 0)
    assert eng2.evaluate({"seg": w2}, 10 * M) == []


def test_absence_from_presence_and_from_last_seen_column():
    eng = engine("""
 - {id: quiet, kind: absence, table: noise, after: 10m, severity: blue, labels_from: [sensor_id]}
 - {id: silent, kind: absence, table: last_seen, last_seen: last_seen_ms, after: 30m, severity: blue, labels_from: [sensor_id]}
""")
    both = pl.DataFrame({"sensor_id": ["n1", "n2"], "laeq_db": [50.0, 51.0]})
    only1 = both.filter(pl.col("sensor_id") == "n1")
    assert eng.evaluate({"noise": both}, 0) == []
    assert eng.evaluate({"noise": only1}, 10 * M) == []  # exactly 10 min: not yet
    got = eng.evaluate({"noise": only1}, 11 * M)
    assert [(c.labels["sensor_id"], c.value) for c in got] == [("n2", 660.0)]
    assert eng.evaluate({"noise": both}, 12 * M) == []  # back
    ls = pl.DataFrame({"sensor_id": ["a", "b", "c"], "last_seen_ms": [100 * M, 60 * M, None]})
    got = eng.evaluate({"last_seen": ls}, 100 * M)
    assert sorted(c.labels["sensor_id"] for c in got if c.rule_id == "silent") == ["b", "c"]
    # the noise feed is missing from this window altogether: both monitors are quiet
    assert sorted(c.labels["sensor_id"] for c in got if c.rule_id == "quiet") == ["n1", "n2"]


MULTI = """
 - id: episode
   kind: multipoint
   signals:
     - {table: air, value: aqi, op: ">", threshold: 150}
     - {table: noise, value: exceedance_db, op: ">", threshold: 5}
   group_by: cell_id
   min_sources: 2
   window: 30m
   severity: orange
   labels_from: [district]
"""


def test_multipoint_needs_n_distinct_sources_in_the_same_cell_within_the_window():
    eng = engine(MULTI)
    air = pl.DataFrame({"sensor_id": ["a1", "a2"], "cell_id": ["C1", "C2"], "district": ["D"] * 2, "aqi": [180.0, 170.0]})
    assert eng.evaluate({"air": air}, 0) == []  # one source per cell
    noise = pl.DataFrame({"sensor_id": ["n1"], "cell_id": ["C1"], "district": ["D"], "exceedance_db": [8.0]})
    got = eng.evaluate({"noise": noise}, 20 * M)  # air a1 seen 20 min ago, still within 30 min
    assert [(c.labels["cell"], c.value, c.labels["sources"]) for c in got] == [("C1", 2.0, "air:a1,noise:n1")]
    assert eng.evaluate({}, 31 * M) == []  # a1's hit left the window; n1 alone is not enough
    # the same sensor twice is one source
    twice = pl.DataFrame({"sensor_id": ["a9", "a9"], "cell_id": ["C5"] * 2, "district": ["D"] * 2, "aqi": [200.0, 210.0]})
    assert eng.evaluate({"air": twice}, 40 * M) == []


def test_multipoint_by_radius_and_by_distinct_feed():
    eng = engine("""
 - id: near
   kind: multipoint
   signals: [{table: s, value: v, op: ">", threshold: 0}]
   radius_m: 500
   min_sources: 3
   window: 5m
   severity: red
   labels_from: [sensor_id]
""")
    # three sensors within ~300 m of each other, one 5 km away
    s = pl.DataFrame({"sensor_id": ["a", "b", "c", "far"], "lon": [120.0, 120.002, 120.0, 120.05],
                      "lat": [30.0, 30.0, 30.002, 30.0], "v": [1.0] * 4})
    got = eng.evaluate({"s": s}, 0)
    assert len(got) == 1 and got[0].value == 3.0 and "far" not in got[0].labels["sources"]
    s2 = s.with_columns(lon=pl.Series([120.0, 120.01, 120.0, 120.05]))  # b now ~960 m away
    eng2 = engine("""
 - {id: near, kind: multipoint, signals: [{table: s, value: v, op: ">", threshold: 0}], radius_m: 500, min_sources: 3, window: 5m, severity: red}
""")
    assert eng2.evaluate({"s": s2}, 0) == []
    feeds = engine("""
 - id: feeds
   kind: multipoint
   distinct: feed
   signals:
     - {table: air, value: aqi, op: ">", threshold: 100}
     - {table: noise, value: db, op: ">", threshold: 0}
   group_by: cell_id
   min_sources: 2
   severity: yellow
""")
    air2 = pl.DataFrame({"sensor_id": ["a1", "a2"], "cell_id": ["C1", "C1"], "aqi": [150.0, 160.0]})
    assert feeds.evaluate({"air": air2}, 0) == []  # two stations but one feed
    got = feeds.evaluate({"air": air2, "noise": pl.DataFrame({"sensor_id": ["n"], "cell_id": ["C1"], "db": [3.0]})}, M)
    assert len(got) == 1 and got[0].value == 2.0


def test_composite_and_or_on_shared_labels():
    eng = engine("""
 - {id: jam, kind: threshold, table: d, value: tpi, op: ">=", threshold: 6, severity: orange, labels_from: [district]}
 - {id: inc, kind: threshold, table: d, value: incidents, op: ">=", threshold: 1, severity: orange, labels_from: [district]}
 - {id: both, kind: composite, op: and, of: [jam, inc], by: [district], severity: red}
 - {id: either, kind: composite, op: or, of: [jam, inc], by: [district], severity: yellow}
""")
    d = pl.DataFrame({"district": ["D1", "D2", "D3"], "tpi": [7.0, 7.0, 1.0], "incidents": [1, 0, 0]})
    got = eng.evaluate({"d": d}, 0)
    both = sorted(c.labels["district"] for c in got if c.rule_id == "both")
    either = sorted(c.labels["district"] for c in got if c.rule_id == "either")
    assert both == ["D1"] and either == ["D1", "D2"]
    assert next(c for c in got if c.rule_id == "both").severity == 1


def test_reload_keeps_memory_of_unchanged_rules_only():
    text = "pack: t\nrules:\n - {id: quiet, kind: absence, table: n, after: 1m, severity: blue, labels_from: [sensor_id]}\n"
    eng = RuleEngine([parse_rule_pack(text)])
    eng.evaluate({"n": pl.DataFrame({"sensor_id": ["x"]})}, 0)
    eng.reload([parse_rule_pack(text.replace("after: 1m", "after: 2m"))])
    assert [c.labels["sensor_id"] for c in eng.evaluate({}, 3 * M)] == ["x"]  # remembered x across the reload
    eng.reload([parse_rule_pack(text.replace("kind: absence, table: n, after: 1m",
                                             "kind: threshold, table: n, value: v, op: '>', threshold: 1"))])
    assert eng.evaluate({}, 4 * M) == []


def test_locator_adds_street_and_a_point_from_the_city():
    from brain.city import demo_city_path, load_city

    city = load_city(demo_city_path())
    seg = city.segments[0]
    eng = engine(THRESH, city=city)
    got = eng.evaluate({"seg": pl.DataFrame({"segment_id": [seg.id], "cell_id": [seg.cell], "tti": [3.0]})}, 0)
    (c,) = got
    cell = city.cell(seg.cell)
    assert c.labels["street"] == cell.street and c.labels["district"] == cell.district
    lons = [p[0] for p in seg.line]
    assert min(lons) <= c.lon <= max(lons)


def test_shipped_anomaly_rule_on_detector_output():
    packs = [p for p in load_rule_packs(default_rules_dir()) if p.pack == "anomaly"]
    eng = RuleEngine(packs)
    frame = pl.DataFrame({"sensor_id": ["L1", "L2", "L3"], "metric": ["speed_kmh"] * 3, "ts_ms": [0] * 3,
                          "value": [5.0, 50.0, 30.0], "expected": [48.0, 49.0, 40.0], "z": [-6.1, 0.2, -2.0],
                          "score": [0.9995, 0.1, 0.997], "reason": ["low", "", "low"], "ongoing": [0.9995, 0.1, 0.997]})
    got = {c.labels["sensor_id"]: (c.trigger, c.severity, c.labels["category"]) for c in eng.evaluate({"anomaly": frame}, 0)}
    # L3 (0.997) is between clear 0.995 and threshold 0.999: held only, never starts an alert.
    # The rule reads ``ongoing`` (part of an anomaly), not ``score`` (an anomaly starts here)
    assert got == {"L1": (True, 4, "anomaly"), "L3": (False, 4, "anomaly")}


def test_detector_key_is_placed_on_the_city():
    from brain.city import demo_city_path, load_city

    city = load_city(demo_city_path())
    seg, sensor = city.segments[3], city.sensors[-1]
    packs = [p for p in load_rule_packs(default_rules_dir()) if p.pack == "anomaly"]
    eng = RuleEngine(packs, city=city)
    frame = pl.DataFrame({"key": [seg.id, sensor.id], "metric": ["speed_kmh", "value"], "window_end_ms": [0, 0],
                          "value": [5.0, 1.0], "expected": [40.0, 0.2], "z": [-5.0, 6.0], "score": [0.9999, 0.9999],
                          "reason": ["drop", "spike"], "ongoing": [0.9999, 0.9999]})
    by_key = {c.labels["key"]: c.labels for c in eng.evaluate({"anomaly": frame}, 0)}
    assert by_key[seg.id]["segment_id"] == seg.id and by_key[seg.id]["cell"] == seg.cell
    assert by_key[sensor.id]["sensor_id"] == sensor.id and by_key[sensor.id]["district"] == sensor.district


def test_digest_rules_mark_their_candidates_and_packs_carry_correlate_rules():
    pack = parse_rule_pack("""
pack: t
rules:
  - {id: rush, kind: threshold, table: seg, value: tpi, op: ">=", threshold: 8, severity: yellow, digest: daily,
     labels_from: [segment_id]}
  - {id: odd, kind: threshold, table: seg, value: tpi, op: ">=", threshold: 8, severity: yellow, digest: 2h,
     labels_from: [segment_id]}
  - {id: page, kind: threshold, table: seg, value: tpi, op: ">=", threshold: 8, severity: yellow, labels_from: [segment_id]}
inhibit:
  - {source: [rule=page], target: [rule=rush], equal: [segment_id]}
correlate:
  - {source: [rule=page], target: [rule=odd], within_m: 500}
""")
    eng = RuleEngine([pack])
    got = {c.rule_id: c.digest_ms for c in eng.evaluate({"seg": pl.DataFrame({"segment_id": ["S1"], "tpi": [9.0]})}, 0)}
    assert got == {"rush": 86_400_000, "odd": 7_200_000, "page": 0}
    # every inhibit rule is a correlation link too, then the pack's own correlate rules
    assert [(str(r.target[0]), r.equal, r.within_m) for r in eng.correlate_rules] == [
        ("rule=rush", ("segment_id",), None), ("rule=odd", (), 500.0)]


def test_shipped_packs_mark_rush_hour_congestion_as_daily_digest_and_incidents_do_not():
    rules = {r.id: r for p in load_rule_packs(default_rules_dir()) for r in p.rules}
    assert rules["segment_severe_congestion"]._digest_ms == 86_400_000
    assert rules["district_congested"]._digest_ms == 86_400_000
    assert rules["incident_active"]._digest_ms == 0 and rules["segment_sudden_slowdown"]._digest_ms == 0


def test_an_incident_known_only_by_its_point_is_placed_in_the_cell_holding_it():
    from brain.alerts.routing import point_in_polygon
    from brain.city import demo_city_path, load_city

    city = load_city(demo_city_path())
    packs = [p for p in load_rule_packs(default_rules_dir()) if p.pack == "emergency"]
    eng = RuleEngine(packs, city=city)
    cell_id, rings = next(iter(city.cell_polygons.items()))
    ring = rings[0]
    # a point inside the polygon: the mean of its vertices works for the demo city's convex cells
    lon = sum(p[0] for p in ring[:-1]) / (len(ring) - 1)
    lat = sum(p[1] for p in ring[:-1]) / (len(ring) - 1)
    assert point_in_polygon(lon, lat, ring)
    frame = pl.DataFrame({"incident_id": ["I1"], "type": ["fire"], "severity": [2], "status": ["dispatched"],
                          "segment_id": [None], "lon": [lon], "lat": [lat], "units": [2]},
                         schema_overrides={"segment_id": pl.String})
    (c,) = [c for c in eng.evaluate({"incidents": frame}, 0) if c.rule_id == "incident_active"]
    cell = city.cell(cell_id)
    assert (c.labels["cell"], c.labels["district"], c.labels["street"]) == (cell.id, cell.district, cell.street)


def test_rule_memory_round_trips_through_bytes_and_skips_rules_whose_kind_changed():
    text = """pack: t
rules:
 - {id: drop, kind: rate, table: seg, value: speed, op: "<=", threshold: -40, mode: pct, per: 5m, severity: yellow,
    labels_from: [segment_id]}
 - {id: quiet, kind: absence, table: n, after: 10m, severity: blue, labels_from: [sensor_id]}
 - {id: mp, kind: multipoint, group_by: cell_id, min_sources: 2, window: 30m, severity: orange, labels_from: [cell_id],
    signals: [{table: u, value: v, op: ">", threshold: 1, source: sensor_id}]}
"""
    w0 = {"seg": pl.DataFrame({"segment_id": ["S1", "S2"], "speed": [50.0, 40.0]}),
          "n": pl.DataFrame({"sensor_id": ["N1"]}),
          "u": pl.DataFrame({"sensor_id": ["A"], "cell_id": ["C1"], "v": [2.0]})}
    w1 = {"seg": pl.DataFrame({"segment_id": ["S1", "S2"], "speed": [20.0, 39.0]}),
          "u": pl.DataFrame({"sensor_id": ["B"], "cell_id": ["C1"], "v": [3.0]})}
    first = RuleEngine([parse_rule_pack(text)])
    first.evaluate(w0, 0)
    saved = first.memory_state()
    assert set(saved) == {"drop", "quiet", "mp"} and all(isinstance(v, bytes) for v in saved.values())
    again = RuleEngine([parse_rule_pack(text)])
    assert sorted(again.restore_memory(saved)) == ["drop", "mp", "quiet"]
    assert ids(again.evaluate(w1, 5 * M)) == ids(first.evaluate(w1, 5 * M)) == [("drop", "S1", True), ("mp", "C1", True)]
    assert ids(again.evaluate({}, 15 * M)) == [("mp", "C1", True), ("quiet", "N1", True)]  # hits last 30 min
    # a rule whose kind changed since the save starts afresh; garbage is skipped, never raised
    changed = RuleEngine([parse_rule_pack(text.replace("kind: absence, table: n, after: 10m",
                                                       "kind: threshold, table: n, value: v, op: '>', threshold: 1"))])
    assert sorted(changed.restore_memory({**saved, "drop": b"not msgpack"})) == ["mp"]
