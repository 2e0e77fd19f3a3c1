"""The shipped demo city loads and is big and varied enough for the simulator and the demo."""
from __future__ import annotations

from collections import Counter

import pytest

from brain.city import SENSOR_FAMILY
from brain.city.model import NOT_IN_DEMO_CITY
from brain.city.geo import haversine_m, point_in_rings


def test_demo_city_identity(city):
    assert city.name == "Demo City"
    assert city.timezone == "Asia/Shanghai"
    assert haversine_m(city.center[0], city.center[1], 120.15, 30.27) < 5000


def test_districts_and_streets(city):
    assert len(city.districts) >= 4
    for d in city.districts:
        assert len(d.admin_code) == 6 and d.admin_code[:4] == city.admin_code[:4] and not d.admin_code.endswith("00")
        assert sum(s.district == d.id for s in city.streets) >= 2, d.id


def test_cells_tile_districts_with_mixed_noise_classes(city):
    assert len(city.cells) >= 30
    assert {"1", "2", "3", "4a"} <= {c.noise_class for c in city.cells}
    for c in city.cells:
        ring = city.cell_polygons[c.id][0]
        assert len(ring) == 5 and ring[0] == ring[-1]
        assert len({p[0] for p in ring}) == 2 and len({p[1] for p in ring}) == 2  # axis-aligned rectangle
    # Rectangles tile each district: their areas (in degree^2) add up to the district's.
    area = lambda ring: abs(sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(ring, ring[1:]))) / 2  # noqa: E731
    for d in city.districts:
        cells_area = sum(area(city.cell_polygons[c.id][0]) for c in city.cells if c.district == d.id)
        assert cells_area == pytest.approx(area(city.district_polygons[d.id][0]), rel=1e-6)


def test_road_segments(city):
    assert len(city.segments) >= 80
    assert {"expressway", "arterial", "secondary"} <= {s.road_class for s in city.segments}
    for s in city.segments:
        assert 200 <= s.length_m <= 2000, s.id
        assert 20 <= s.free_flow_kmh <= 100 and 1 <= s.lanes <= 5
        mid = [(s.line[0][0] + s.line[-1][0]) / 2, (s.line[0][1] + s.line[-1][1]) / 2]
        assert point_in_rings(mid[0], mid[1], city.cell_polygons[s.cell]), s.id
        assert 0.99 < haversine_m(*s.line[0], *s.line[-1]) / s.length_m < 1.01, s.id


def test_corridors(city):
    assert len(city.corridors) >= 2
    for c in city.corridors:
        assert len(c.intersections) >= 8
        assert c.positions_m[0] == 0
        gaps = [b - a for a, b in zip(c.positions_m, c.positions_m[1:])]
        assert all(250 <= g <= 800 for g in gaps), gaps
        assert 40 <= c.speed_out_kmh <= 50 and 40 <= c.speed_in_kmh <= 50
        for iid in c.intersections:
            x = city.intersection(iid)
            assert sum(p.coordinated for p in x.phases) == 1
            assert all(p.min_green_s > 0 and p.yellow_s > 0 and p.all_red_s > 0 for p in x.phases)
            assert any(p.ped_clearance_s > 0 for p in x.phases)
            assert x.approach_segments
            for sid in x.approach_segments:  # an approach ends at the intersection
                end = city.segment(sid).line[-1]
                assert haversine_m(end[0], end[1], x.lon, x.lat) < 5


def test_sensor_registry(city):
    assert len(city.sensors) >= 300
    types = Counter(s.type for s in city.sensors)
    assert set(types) == set(SENSOR_FAMILY) - NOT_IN_DEMO_CITY, set(SENSOR_FAMILY) - set(types)
    assert len({s.id for s in city.sensors}) == len(city.sensors)
    for s in city.sensors:
        assert s.owner and s.unit and s.valid_min < s.valid_max
        if s.type in ("loop", "video", "radar", "probe"):
            assert s.segment is not None
        if s.type.startswith("utility_") and s.type != "utility_outage_feed":
            assert s.unit in ("kPa", "m3/h", "kW") and s.valid_min <= s.nominal <= s.valid_max
    assert {s.unit for s in city.sensors if s.type.startswith("utility_")} >= {"kPa", "m3/h", "kW"}
    owners = {s.owner for s in city.sensors}
    assert {"交警支队", "生态环境局", "城管局", "应急管理局", "水务集团", "供电公司"} <= owners
    # every segment has a probe feed
    assert {s.segment for s in city.sensors if s.type == "probe"} == {s.id for s in city.segments}


def test_hazards(city):
    assert len(city.hazards) >= 3
    for h in city.hazards:
        monitors = [s for s in city.sensors if s.hazard == h.id]
        assert monitors and all(s.type == "hazard" and s.unit == h.unit for s in monitors)


@pytest.mark.parametrize("module", ["brain.city", "brain.city.loader", "brain.city.checks", "brain.city.shapes", "brain.city.problems", "brain.city.geo", "brain.city.demo_gen", "brain.city.demo_layout"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
