"""Spikes and drift on a signed reading: a thermometer below 0 °C.

The kernels judge the primary value's log, which a temperature at or below 0 °C does not have: every
reading of a frosty night was read as the same floor, so a thermometer jumping from -4 °C to -16 °C
and back was invisible. The operator feeds signed fields (``SIGNED_SCALE``) through exp(asinh(x /
scale)) instead. The real operator on the demo city's weather stations, one 5-minute tick after
another from a cold start; the configuration without the transform is the peer (it misses the spikes).
"""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import streams.fault_operator as fo
from brain.city import demo_city_path, load_city
from brain.ticks import TickBatch

T0 = 1_780_243_200_000
TICK = 300_000


@pytest.fixture(scope="module")
def city():
    return load_city(demo_city_path())


def _night(city, spiking: str | None, mean_c: float, ticks: int = 30) -> dict[str, int]:
    """First tick (index) each (sensor, fault) was suspected; ``spiking`` reads x4 at every 3rd tick after the first hour."""
    op = fo.FaultOperator(city)
    wx = [s.id for s in city.sensors if s.type == "weather"]
    rng = np.random.default_rng(5)
    first: dict[str, int] = {}
    for t in range(ticks):
        end = T0 + (t + 1) * TICK
        temp = np.round(mean_c - 0.01 * t + rng.normal(0.0, 0.1, len(wx)), 1)
        if spiking is not None and t >= 12 and t % 3 == 0:
            temp[wx.index(spiking)] = round(temp[wx.index(spiking)] * 4.0, 1)
        frame = pl.DataFrame({"sensor_id": wx, "ts_ms": [end - 1000] * len(wx), "window_end_ms": [end] * len(wx),
                              "temp_c": temp, "humidity_pct": np.round(80 + rng.normal(0, 1, len(wx)), 1),
                              "wind_ms": np.round(2 + rng.normal(0, 0.3, len(wx)).clip(-1.9), 1),
                              "rain_mm": [0.0] * len(wx)})
        out = op(TickBatch(ends=[end], inputs={"weather": frame}, vitals={}))["sensor_faults"]
        for sid, fault in out.filter(pl.col("family") == "weather").select("sensor_id", "fault").iter_rows():
            first.setdefault(f"{sid}/{fault}", t)
    return first


def test_spikes_below_zero_are_caught_within_the_hour(city):
    target = next(s.id for s in city.sensors if s.type == "weather")
    first = _night(city, target, mean_c=-4.0)
    assert f"{target}/spikes" in first, first
    assert first[f"{target}/spikes"] <= 12 + 12, first  # within the hour after the first spike
    assert [k for k in first if not k.startswith(target)] == []  # no other station suspected


def test_a_healthy_frosty_night_raises_nothing(city):
    assert _night(city, None, mean_c=-4.0) == {}


def test_without_the_transform_the_spikes_below_zero_are_missed(city, monkeypatch):
    monkeypatch.setattr(fo, "SIGNED_SCALE", {})
    target = next(s.id for s in city.sensors if s.type == "weather")
    assert f"{target}/spikes" not in _night(city, target, mean_c=-4.0)
