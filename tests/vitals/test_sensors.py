"""Sensor freshness boundaries and registry metadata completeness."""
from __future__ import annotations

import math

import pytest

from brain.city.model import City, District, GridCell, HazardSource, RoadSegment, Sensor, Street
from brain.vitals import sensors


def test_freshness_boundaries():
    # Interval 60 s, t = 10 000 s: age 120 s (= 2 intervals) fresh, 121 s stale, 600 s stale, 601 s silent.
    t = 10_000_000
    seen = [t - 120_000, t - 121_000, t - 600_000, t - 601_000, math.nan, t + 5_000]
    codes = sensors.freshness(seen, t, [60.0] * 6)
    assert [sensors.FRESHNESS_NAMES[c] for c in codes] == ["fresh", "stale", "stale", "silent", "never", "fresh"]


def test_freshness_parameters_checked():
    with pytest.raises(ValueError, match="fresh_factor <= silent_factor"):
        sensors.freshness([0.0], 0, [60.0], fresh_factor=5, silent_factor=2)
    with pytest.raises(ValueError, match="intervals must be > 0"):
        sensors.freshness([0.0], 0, [0.0])


def _city(sensor_list):
    return City(
        name="T", admin_code="110000", timezone="Asia/Shanghai", center=[116.4, 39.9],
        districts=[District(id="D1", name="d1", admin_code="110101", center=[116.4, 39.9]),
                   District(id="D2", name="d2", admin_code="110102", center=[116.5, 39.9])],
        streets=[Street(id="ST1", name="s", district="D1")],
        cells=[GridCell(id="C1", district="D1", street="ST1", center=[116.4, 39.9])],
        segments=[RoadSegment(id="S1", name="r", district="D1", cell="C1", road_class="arterial", length_m=500.0,
                              free_flow_kmh=50.0, lanes=2, line=[[116.4, 39.9], [116.41, 39.9]])],
        intersections=[], corridors=[], sensors=sensor_list,
        hazards=[HazardSource(id="H1", name="tank", kind="lpg", district="D1", cell="C1", lon=116.4, lat=39.9, alarm_high=80, unit="%")],
    )


def _s(**kw):
    base = dict(id="X", type="loop", lon=116.4, lat=39.9, district="D1", cell="C1", owner="police", unit="km/h",
                valid_min=0.0, valid_max=200.0, segment="S1")
    base.update(kw)
    return Sensor(**base)


@pytest.mark.parametrize(
    "kw, problem",
    [
        ({}, None),
        ({"owner": " "}, "no owner department"),
        ({"unit": ""}, "no unit of measure"),
        ({"valid_min": 5.0, "valid_max": 5.0}, "valid range empty"),
        ({"lon": 0.0, "lat": 0.0}, "no usable location"),
        ({"district": "D2"}, "cell 'C1' is in district 'D1', not 'D2'"),
        ({"cell": "C9"}, "unknown grid cell 'C9'"),
        ({"segment": "S9"}, "traffic detector without a known road segment"),
        ({"type": "utility_water", "unit": "kPa", "segment": None}, "utility meter without a nominal value"),
        ({"type": "utility_water", "unit": "kPa", "segment": None, "nominal": 300.0}, None),
        ({"type": "hazard", "segment": None, "hazard": "H9"}, "hazard sensor without a known hazard source"),
        ({"type": "hazard", "segment": None, "hazard": "H1"}, None),
        ({"type": "teleporter"}, "unknown sensor type 'teleporter'"),
    ],
)
def test_metadata_problems(kw, problem):
    s = _s(**kw)
    got = sensors.metadata_problems(s, _city([s]))
    if problem is None:
        assert got == []
    else:
        assert any(p.startswith(problem) for p in got), got


def test_metadata_complete_array_order():
    good, bad = _s(id="A"), _s(id="B", owner="")
    assert sensors.metadata_complete(_city([good, bad])).tolist() == [True, False]
