"""The simulator's grid-case rate grows with the city: a generated 50k-sensor city reports >= 300k
cases a day (issue 14's "few hundred thousand a day"), the demo city stays as it was."""
from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from brain.city import demo_city_path, load_city
from brain.city.synth import write
from streams.sim.clock import local_time
from streams.sim.events import GridCaseGen

HOUR_MS = 3_600_000
DAY0 = 1_780_243_200_000  # a midnight in Asia/Shanghai (16:00 UTC)


def _cases_a_day(city, seed: int) -> int:
    gen = GridCaseGen(city, seed)
    tz = ZoneInfo(city.timezone)
    n = 0
    for h in range(24):
        a = DAY0 + h * HOUR_MS
        frame = gen.arrivals(a, a + HOUR_MS, local_time(a, tz), seed)
        n += 0 if frame is None else frame.filter(frame["status"] == "reported").height
    return n


@pytest.mark.parametrize("seed", [3, 11])
def test_a_50k_sensor_city_reports_300k_cases_a_day(tmp_path, seed):
    write(tmp_path, 50_000, 16, seed)
    city = load_city(tmp_path)
    n = _cases_a_day(city, seed)
    assert 300_000 <= n <= 400_000, n


def test_the_demo_city_rate_is_unchanged():
    city = load_city(demo_city_path())
    gen = GridCaseGen(city, 0)
    assert gen.rate_per_cell_hour == GridCaseGen.RATE_PER_CELL_HOUR
    assert 100 <= _cases_a_day(city, 0) <= 400  # ~0.35 x 42 cells x 24 h x 0.6 (the daily profile)
