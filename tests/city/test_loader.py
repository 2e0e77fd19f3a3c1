"""Every kind of problem in a city folder is reported with its file and field path."""
from __future__ import annotations

import math

import pytest

from brain.city import CityError, city_from_data, demo_city_path, load_city
from tests.city.conftest import find, problems_of

Y = "city.yaml"


def first(items: list[dict], **match) -> int:
    return next(i for i, x in enumerate(items) if all(x.get(k) == v for k, v in match.items()))


def test_demo_copy_is_valid(city_dir):
    # The round trip through the helpers keeps the city valid, so every failure below is the edit's.
    city = load_city(city_dir())
    assert len(city.sensors) == len(load_city(demo_city_path()).sensors)


def test_city_yaml_path_is_accepted(city_dir):
    folder = city_dir()
    assert load_city(folder / "city.yaml").name == load_city(folder).name


REFERENCE_CASES = [
    # (section, which item, field, message): all applied at once, to different items
    ("streets", {}, "district", "unknown district 'nowhere'"),
    ("cells", {}, "district", "unknown district 'nowhere'"),
    ("cells", {"id": "NH-02"}, "street", "unknown street 'nowhere'"),
    ("segments", {}, "district", "unknown district 'nowhere'"),
    ("segments", {"id": "NW-01W"}, "cell", "unknown cell 'nowhere'"),
    ("intersections", {}, "cell", "unknown cell 'nowhere'"),
    ("hazards", {}, "district", "unknown district 'nowhere'"),
    ("sensors", {"type": "air"}, "district", "unknown district 'nowhere'"),
    ("sensors", {"type": "loop"}, "cell", "unknown cell 'nowhere'"),
    ("sensors", {"type": "probe"}, "segment", "unknown segment 'nowhere'"),
    ("sensors", {"type": "hazard"}, "hazard", "unknown hazard source 'nowhere'"),
]


def test_unknown_references(city_dir):
    where = []

    def mutate(d):
        for section, match, field, _ in REFERENCE_CASES:
            i = first(d[section], **match)
            d[section][i][field] = "nowhere"
            where.append(f"{section}[{i}].{field}")

    problems = problems_of(city_dir(mutate))
    assert len(set(where)) == len(REFERENCE_CASES)  # every case edits its own item
    for path, (_, _, _, message) in zip(where, REFERENCE_CASES):
        assert find(problems, Y, path).message.startswith(message), path


def test_problem_str_names_file_field_and_value(city_dir):
    def mutate(d):
        d["sensors"][12]["cell"] = "C99"

    with pytest.raises(CityError) as info:
        load_city(city_dir(mutate))
    assert "city.yaml: sensors[12].cell: unknown cell 'C99'" in str(info.value)
    assert str(info.value.problems[0]).startswith("city.yaml: sensors[12].cell: unknown cell 'C99'")
    assert isinstance(info.value, ValueError)


def test_unknown_approach_segment_and_corridor_intersection(city_dir):
    def mutate(d):
        d["intersections"][2]["approach_segments"][1] = "S-404"
        d["corridors"][1]["intersections"][4] = "I-404"

    problems = problems_of(city_dir(mutate))
    assert "unknown segment 'S-404'" in find(problems, Y, "intersections[2].approach_segments[1]").message
    assert "unknown intersection 'I-404'" in find(problems, Y, "corridors[1].intersections[4]").message


def test_cell_of_another_district(city_dir):
    box = {}

    def mutate(d):
        i = first(d["sensors"], type="noise")
        other = next(c for c in d["cells"] if c["district"] != d["sensors"][i]["district"])
        d["sensors"][i]["cell"] = other["id"]
        box["i"] = i

    p = find(problems_of(city_dir(mutate)), Y, f"sensors[{box['i']}].cell")
    assert "is in district" in p.message


def test_street_of_another_district(city_dir):
    def mutate(d):
        other = next(s for s in d["streets"] if s["district"] != d["cells"][0]["district"])
        d["cells"][0]["street"] = other["id"]

    assert "is in district" in find(problems_of(city_dir(mutate)), Y, "cells[0].street").message


def test_duplicate_ids(city_dir):
    sections = ["districts", "streets", "cells", "segments", "intersections", "corridors", "sensors", "hazards"]

    def mutate(d):
        for section in sections:
            d[section][1]["id"] = d[section][0]["id"]

    problems = problems_of(city_dir(mutate))
    for section in sections:
        assert "duplicate id" in find(problems, Y, f"{section}[1].id").message


# --- sensors -------------------------------------------------------------------------------------
def test_unknown_sensor_type(city_dir):
    def mutate(d):
        d["sensors"][7]["type"] = "lidar"

    assert "unknown sensor type 'lidar'" in find(problems_of(city_dir(mutate)), Y, "sensors[7].type").message


def test_valid_range_inverted(city_dir):
    def mutate(d):
        d["sensors"][3].update(valid_min=10.0, valid_max=10.0)
        d["sensors"][4].update(valid_min=50.0, valid_max=0.0)

    problems = problems_of(city_dir(mutate))
    assert "valid_min 10.0 >= valid_max 10.0" in find(problems, Y, "sensors[3].valid_max").message
    assert "valid_min 50.0 >= valid_max 0.0" in find(problems, Y, "sensors[4].valid_max").message


def test_traffic_sensors_without_segment(city_dir):
    where = {}

    def mutate(d):
        for stype in ("loop", "video", "radar", "probe"):
            where[stype] = i = first(d["sensors"], type=stype)
            del d["sensors"][i]["segment"]

    problems = problems_of(city_dir(mutate))
    for stype, i in where.items():
        assert f"a {stype} sensor needs a segment" in find(problems, Y, f"sensors[{i}].segment").message


def test_utility_sensor_checks(city_dir):
    box = {}

    def mutate(d):
        box["a"] = a = first(d["sensors"], type="utility_gas")
        box["b"] = b = first(d["sensors"], type="utility_power")
        box["c"] = c = first(d["sensors"], type="utility_water")
        del d["sensors"][a]["nominal"]
        d["sensors"][b]["unit"] = "MW"
        d["sensors"][c]["nominal"] = d["sensors"][c]["valid_max"] + 1

    problems = problems_of(city_dir(mutate))
    assert "nominal" in find(problems, Y, f"sensors[{box['a']}].nominal").message
    assert "'MW'" in find(problems, Y, f"sensors[{box['b']}].unit").message
    assert "outside the valid range" in find(problems, Y, f"sensors[{box['c']}].nominal").message


def test_hazard_sensor_checks(city_dir):
    box = {}

    def mutate(d):
        box["a"] = a = first(d["sensors"], type="hazard")
        box["b"] = b = first(d["sensors"], type="air")
        d["sensors"][a]["unit"] = "bar"
        d["sensors"][b]["hazard"] = d["hazards"][0]["id"]

    problems = problems_of(city_dir(mutate))
    assert "differs from hazard source" in find(problems, Y, f"sensors[{box['a']}].unit").message
    assert "only hazard sensors" in find(problems, Y, f"sensors[{box['b']}].hazard").message


# --- coordinates ---------------------------------------------------------------------------------
def test_coordinates_out_of_range_and_far_away(city_dir):
    def mutate(d):
        d["sensors"][0]["lat"] = 95.0
        d["sensors"][1]["lon"] = -181.0
        d["sensors"][2]["lon"] += 2.0  # ~190 km east
        d["segments"][3]["line"][1] = [121.5, 30.27]
        d["cells"][4]["center"] = [120.15]

    problems = problems_of(city_dir(mutate))
    assert "latitude 95.0 out of range" in find(problems, Y, "sensors[0].lat").message
    assert "longitude -181.0 out of range" in find(problems, Y, "sensors[1].lon").message
    assert "far outside the city" in find(problems, Y, "sensors[2]").message
    assert "far outside the city" in find(problems, Y, "segments[3].line[1]").message
    assert "[lon, lat]" in find(problems, Y, "cells[4].center").message


def test_point_outside_its_district(city_dir):
    box = {}

    def mutate(d):
        i = first(d["sensors"], type="weather")
        other = next(x for x in d["districts"] if x["id"] != d["sensors"][i]["district"])
        d["sensors"][i]["lon"], d["sensors"][i]["lat"] = other["center"]  # inside the city, wrong district
        box["i"] = i

    assert "outside its district" in find(problems_of(city_dir(mutate)), Y, f"sensors[{box['i']}]").message


SEGMENT_CASES = [("length_m", 0.0), ("length_m", -5.0), ("free_flow_kmh", 0.0), ("lanes", 0), ("lanes", -2)]


def test_segment_physics(city_dir):
    def mutate(d):
        for k, (field, value) in enumerate(SEGMENT_CASES):
            d["segments"][5 + k][field] = value

    problems = problems_of(city_dir(mutate))
    for k, (field, value) in enumerate(SEGMENT_CASES):
        assert f"must be > 0, got {value}" in find(problems, Y, f"segments[{5 + k}].{field}").message


def test_segment_length_disagrees_with_line(city_dir):
    def mutate(d):
        d["segments"][6]["length_m"] *= 10

    assert "disagrees with its line" in find(problems_of(city_dir(mutate)), Y, "segments[6].length_m").message


def test_intersection_without_phases(city_dir):
    def mutate(d):
        d["intersections"][0]["phases"] = []

    assert "no phases" in find(problems_of(city_dir(mutate)), Y, "intersections[0].phases").message


def test_min_green_not_positive(city_dir):
    def mutate(d):
        d["intersections"][1]["phases"][1]["min_green_s"] = 0.0
        d["intersections"][2]["phases"][0]["min_green_s"] = -3.0

    problems = problems_of(city_dir(mutate))
    assert "must be > 0, got 0.0" in find(problems, Y, "intersections[1].phases[1].min_green_s").message
    assert "must be > 0, got -3.0" in find(problems, Y, "intersections[2].phases[0].min_green_s").message


def test_corridor_intersection_needs_one_coordinated_phase(city_dir):
    box = {}

    def mutate(d):
        iid = d["corridors"][0]["intersections"][3]
        i = first(d["intersections"], id=iid)
        for ph in d["intersections"][i]["phases"]:
            ph["coordinated"] = False
        box["iid"] = iid

    p = find(problems_of(city_dir(mutate)), Y, "corridors[0].intersections[3]")
    assert "0 coordinated phases" in p.message and box["iid"] in p.message


def test_corridor_positions(city_dir):
    def mutate(d):
        d["corridors"][0]["positions_m"][0] = 5.0
        pos = d["corridors"][1]["positions_m"]
        pos[3] = pos[2]  # not strictly increasing

    problems = problems_of(city_dir(mutate))
    assert "must be 0" in find(problems, Y, "corridors[0].positions_m[0]").message
    assert "strictly increase" in find(problems, Y, "corridors[1].positions_m[3]").message


def test_corridor_positions_length_mismatch(city_dir):
    def mutate(d):
        d["corridors"][0]["positions_m"].pop()

    assert "positions for" in find(problems_of(city_dir(mutate)), Y, "corridors[0].positions_m").message


def test_corridor_positions_disagree_with_coordinates(city_dir):
    def mutate(d):
        d["corridors"][0]["positions_m"] = [p * 3 for p in d["corridors"][0]["positions_m"]]

    assert "disagrees with their coordinates" in find(problems_of(city_dir(mutate)), Y, "corridors[0].positions_m[1]").message


def test_corridor_speeds_and_cycle(city_dir):
    def mutate(d):
        d["corridors"][0].update(speed_out_kmh=0.0, cycle_min_s=0.0)
        d["corridors"][1].update(speed_in_kmh=-40.0, cycle_max_s=50.0)

    problems = problems_of(city_dir(mutate))
    assert "must be > 0" in find(problems, Y, "corridors[0].speed_out_kmh").message
    assert "must be > 0" in find(problems, Y, "corridors[0].cycle_min_s").message
    assert "must be > 0" in find(problems, Y, "corridors[1].speed_in_kmh").message
    assert "< cycle_min_s" in find(problems, Y, "corridors[1].cycle_max_s").message


def test_corridor_cycle_implausible(city_dir):
    def mutate(d):
        d["corridors"][1]["cycle_max_s"] = 600.0

    assert "implausible" in find(problems_of(city_dir(mutate)), Y, "corridors[1].cycle_max_s").message


ADMIN_CODE_CASES = [("33990", "not 6 digits"), ("3399O5", "not 6 digits"), ("110105", "not a district code under"),
                    ("339900", "not a district code under")]


def test_district_admin_code(city_dir):
    def mutate(d):
        for k, (code, _) in enumerate(ADMIN_CODE_CASES):
            d["districts"][k]["admin_code"] = code

    problems = problems_of(city_dir(mutate))
    for k, (_, message) in enumerate(ADMIN_CODE_CASES):
        assert message in find(problems, Y, f"districts[{k}].admin_code").message


def test_city_fields(city_dir):
    def mutate(d):
        d["admin_code"] = "3399"
        d["timezone"] = "Mars/Olympus"
        d["health_weights"]["grid"] = -1.0
        d["colour"] = "blue"
        del d["corridors"]

    problems = problems_of(city_dir(mutate))
    assert "not 6 digits" in find(problems, Y, "admin_code").message
    assert "time zone" in find(problems, Y, "timezone").message
    assert ">= 0" in find(problems, Y, "health_weights.grid").message
    assert find(problems, Y, "colour").message == "unknown field"
    assert find(problems, Y, "corridors").message == "missing required field"


# --- types -----------------------------------------------------------------------------------------
def test_type_errors_name_the_field_path_and_all_are_reported(city_dir):
    def mutate(d):
        d["sensors"][3]["lon"] = "east"
        d["sensors"][40]["valid_max"] = [1, 2]
        d["intersections"][0]["phases"][1]["yellow_s"] = "three"
        del d["segments"][9]["lanes"]
        d["cells"][2]["noise_class"] = "5"
        d["hazards"][0]["wind"] = 3

    problems = problems_of(city_dir(mutate))
    assert "Expected `float`, got `str`" in find(problems, Y, "sensors[3].lon").message
    assert "Expected `float`, got `array`" in find(problems, Y, "sensors[40].valid_max").message
    assert "got `str`" in find(problems, Y, "intersections[0].phases[1].yellow_s").message
    assert find(problems, Y, "segments[9].lanes").message == "missing required field"
    assert "'4a'" in find(problems, Y, "cells[2].noise_class").message
    assert find(problems, Y, "hazards[0].wind").message == "unknown field"


def test_type_error_does_not_cause_spurious_reference_errors(city_dir):
    # A district that fails to decode is still a known id: its cells must not be "unknown district".
    def mutate(d):
        d["districts"][0]["center"] = "middle"

    problems = problems_of(city_dir(mutate))
    assert [p.field_path for p in problems] == ["districts[0].center"]


def test_non_finite_numbers(city_dir):
    def mutate(d):
        d["segments"][0]["free_flow_kmh"] = math.nan
        d["sensors"][0]["valid_max"] = math.inf

    problems = problems_of(city_dir(mutate))
    assert "not a finite number" in find(problems, Y, "segments[0].free_flow_kmh").message
    assert "not a finite number" in find(problems, Y, "sensors[0].valid_max").message


def test_all_problems_are_collected(city_dir):
    def mutate(d):
        d["sensors"][1]["cell"] = "nowhere"
        d["sensors"][2]["type"] = "lidar"
        d["segments"][4]["lanes"] = 0
        d["corridors"][0]["speed_in_kmh"] = 0.0
        d["districts"][1]["admin_code"] = "12"

    def mutate_cells(fc):
        fc["features"][0]["geometry"]["coordinates"][0].pop()

    problems = problems_of(city_dir(mutate, mutate_cells=mutate_cells))
    paths = {(p.file, p.field_path) for p in problems}
    assert {(Y, "sensors[1].cell"), (Y, "sensors[2].type"), (Y, "segments[4].lanes"), (Y, "corridors[0].speed_in_kmh"),
            (Y, "districts[1].admin_code"), ("cells.geojson", "features[0].geometry.coordinates[0]")} <= paths


def test_city_from_data_without_geojson(demo_raw):
    # In-memory cities (tests, tools) may skip the polygons; everything else is still checked.
    city = city_from_data(demo_raw[0])
    assert city.district_polygons == {} and city.cell_polygons == {}
    broken = dict(demo_raw[0], timezone="Nowhere/Land")
    with pytest.raises(CityError) as info:
        city_from_data(broken)
    assert [str(p) for p in info.value.problems] == ["city.yaml: timezone: unknown IANA time zone 'Nowhere/Land'"]


def test_things_far_from_what_they_belong_to(city_dir):
    box = {}

    def mutate(d):
        # a loop detector pointed at a segment on the other side of the city
        box["loop"] = i = first(d["sensors"], type="loop")
        s = d["sensors"][i]
        far = max(d["segments"], key=lambda g: abs(g["line"][0][0] - s["lon"]) + abs(g["line"][0][1] - s["lat"]))
        s["segment"] = far["id"]
        # an approach segment that does not end at its intersection
        x = d["intersections"][0]
        box["approach"] = next(g["id"] for g in d["segments"] if abs(g["line"][-1][0] - x["lon"]) > 0.02)
        x["approach_segments"][0] = box["approach"]
        # a hazard sensor named after a hazard source across the city
        box["hz"] = j = first(d["sensors"], type="hazard", hazard="HZ3")
        d["sensors"][j]["hazard"] = "HZ4"
        d["sensors"][j]["unit"] = next(h["unit"] for h in d["hazards"] if h["id"] == "HZ4")

    problems = problems_of(city_dir(mutate))
    assert "m from its segment" in find(problems, Y, f"sensors[{box['loop']}]").message
    assert f"segment '{box['approach']}' ends" in find(problems, Y, "intersections[0].approach_segments[0]").message
    assert "m from its hazard source 'HZ4'" in find(problems, Y, f"sensors[{box['hz']}]").message


def test_corridor_cycle_too_short_for_its_phases(city_dir):
    box = {}

    def mutate(d):
        iid = d["corridors"][0]["intersections"][2]
        x = d["intersections"][first(d["intersections"], id=iid)]
        x["phases"][0]["min_green_s"] = 200.0  # alone longer than the corridor's longest cycle
        box["iid"] = iid

    p = find(problems_of(city_dir(mutate)), Y, "corridors[0].cycle_max_s")
    assert f"intersection '{box['iid']}' needs at least" in p.message


def test_blank_ids(city_dir):
    def mutate(d):
        d["sensors"][0]["id"] = ""
        d["cells"][1]["id"] = " NH-02"

    problems = problems_of(city_dir(mutate))
    assert "empty or has surrounding spaces" in find(problems, Y, "sensors[0].id").message
    assert "empty or has surrounding spaces" in find(problems, Y, "cells[1].id").message
