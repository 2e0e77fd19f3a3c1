"""Noise period boundaries at 06:00 and 22:00 local time, GB 3096 limits, exceedance, night maximum."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from brain.vitals import noise


def _ms(tz: str, *fields) -> int:
    return int(dt.datetime(*fields, tzinfo=ZoneInfo(tz)).timestamp() * 1000)


@pytest.mark.parametrize("tz, date", [("Asia/Shanghai", (2026, 1, 10)), ("Europe/Berlin", (2026, 7, 1)), ("Europe/Berlin", (2026, 1, 10))])
def test_day_night_boundaries(tz, date):
    y, m, d = date
    six = _ms(tz, y, m, d, 6, 0)
    ten_pm = _ms(tz, y, m, d, 22, 0)
    ts = [six - 1, six, ten_pm - 1, ten_pm, _ms(tz, y, m, d, 0, 0), _ms(tz, y, m, d, 12, 0)]
    assert noise.is_night(ts, tz).tolist() == [True, False, False, True, True, False]


def test_utc_hour_is_not_local_hour():
    # 06:00 in Shanghai is 22:00 UTC the day before: day in Shanghai, night in UTC.
    t = _ms("Asia/Shanghai", 2026, 1, 10, 6, 0)
    assert noise.is_night([t], "Asia/Shanghai").tolist() == [False]
    assert noise.is_night([t], "UTC").tolist() == [True]


def test_unknown_timezone():
    with pytest.raises(ValueError, match="unknown time zone"):
        noise.is_night([0], "Mars/Olympus")


@pytest.mark.parametrize("cls, day, night", [("0", 50, 40), ("1", 55, 45), ("2", 60, 50), ("3", 65, 55), ("4a", 70, 55), ("4b", 70, 60)])
def test_gb3096_limits(cls, day, night):
    assert noise.limit_db([cls, cls], [False, True]).tolist() == [day, night]


def test_unknown_zone_class():
    with pytest.raises(ValueError, match="unknown acoustic zone class"):
        noise.limit_db(["5"], [False])


def test_exceedance_and_night_maximum():
    # Class 1 at night (45): LAeq 47.5 exceeds by 2.5; LAmax 60 is exactly 45 + 15 (allowed), 61 exceeds by 1.
    lim = noise.limit_db(["1", "1", "1"], [True, True, True])
    assert noise.exceedance_db([47.5, 44.0, 45.0], lim).tolist() == [2.5, 0.0, 0.0]
    assert noise.night_max_exceedance_db([60.0, 61.0, np.nan], lim, [True, True, True])[:2].tolist() == [0.0, 1.0]
    # The sudden-maximum rule does not apply by day.
    assert noise.night_max_exceedance_db([90.0], [55.0], [False]).tolist() == [0.0]


def test_energy_mean_weighted():
    # 50 dB for 3 min and 60 dB for 1 min: 10*log10((3*10^5 + 10^6)/4) = 10*log10(325000) = 55.12
    assert noise.energy_mean_db([50.0, 60.0], [3.0, 1.0]) == pytest.approx(10 * np.log10(325_000))
    assert np.isnan(noise.energy_mean_db([np.nan]))
