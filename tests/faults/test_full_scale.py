"""A spiking probe whose valid range is the quantity's physical one reads the rail, not beyond it.

A water-quality probe's valid pH range is 0-14: a spike of x2.5 or more on pH ~7 reads 14.0, a valid
reading, so it is no dead letter and never counts as out of range. Its tick means jump to 14.0 and
back, and the kernel needs three separate excursions in 24 readings; on simulated day 921408
(``bench/alert_quality.py --seeds 5 --seed 921408``, WQ-04 from 17:42 for 87 min) the fault made only
two (14.0 at two ticks in a row, then one more two ticks later) and was missed. A tick mean at the top of
the sensor's valid range (full scale) now counts as an out-of-range reading (two within the sensor's
last 12 reports are spikes). The real operator; the peer is the same operator with the full-scale
evidence switched off (as before), which stays silent on the same readings.
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


def _wq_day(city, spiking: str | None, pinned_ticks=(30, 31, 33), ticks=60) -> dict[str, int]:
    """Every water-quality probe reports once per tick (pH ~7.2); ``spiking`` reads 14.0 at ``pinned_ticks``.
    First tick per ``sensor/fault``."""
    wq = [s.id for s in city.sensors if s.type == "water_quality"]
    rng = np.random.default_rng(11)
    op = fo.FaultOperator(city)
    first: dict[str, int] = {}
    for t in range(ticks):
        end = T0 + (t + 1) * TICK
        ph = 7.2 + 0.1 * np.sin(t / 30.0) + rng.normal(0.0, 0.04, len(wq))
        if spiking is not None and t in pinned_ticks:
            ph[wq.index(spiking)] = 14.0
        frame = pl.DataFrame({"sensor_id": wq, "ts_ms": [end - 1000] * len(wq), "window_end_ms": [end] * len(wq),
                              "ph": np.round(ph, 2), "turbidity_ntu": np.round(2.0 + rng.normal(0, 0.3, len(wq)), 2),
                              "dissolved_oxygen_mgl": np.round(8.0 + rng.normal(0, 0.2, len(wq)), 2)})
        out = op(TickBatch(ends=[end], inputs={"water_quality": frame}, vitals={}))["sensor_faults"]
        for sid, fault, ev in out.select("sensor_id", "fault", "evidence").iter_rows():
            first.setdefault(f"{sid}/{fault}", t)
            first.setdefault(f"{sid}/{fault}/evidence", ev)
    return first


def test_a_probe_pinned_at_full_scale_twice_within_its_last_twelve_reports_is_spiking(city):
    first = _wq_day(city, "WQ-04")
    assert first.get("WQ-04/spikes") == 31  # the second tick at 14.0
    assert "top of its valid range [0, 14]" in first["WQ-04/spikes/evidence"]
    assert [k for k in first if not k.startswith("WQ-04/")] == []  # its peers stay clean


def test_before_full_scale_readings_were_no_evidence_and_the_same_fault_was_missed(city, monkeypatch):
    monkeypatch.setattr(fo, "FULL_SCALE_IS_SPIKE", False)
    assert _wq_day(city, "WQ-04") == {}


def test_one_reading_at_full_scale_or_a_healthy_day_raises_nothing(city):
    assert _wq_day(city, "WQ-04", pinned_ticks=(30,)) == {}
    assert _wq_day(city, None) == {}
