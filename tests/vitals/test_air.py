"""IAQI / AQI against hand-computed HJ 633-2012 cases (breakpoints from the standard's Table 1).

IAQI = (IAQI_hi - IAQI_lo) / (BP_hi - BP_lo) * (C - BP_lo) + IAQI_lo, rounded up to an integer.
"""
from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.vitals import air


@pytest.mark.parametrize(
    "pollutant, averaging, conc, expected",
    [
        # PM2.5 24 h 80: between 75 (100) and 115 (150): 50/40*5 + 100 = 106.25 -> 107
        ("pm25", "24h", 80.0, 107),
        # PM2.5 24 h 35.5: 50/40*0.5 + 50 = 50.625 -> 51 (a fraction above a breakpoint rounds up)
        ("pm25", "24h", 35.5, 51),
        # PM2.5 24 h 75 is exactly a breakpoint: 100, not 101
        ("pm25", "24h", 75.0, 100),
        # PM10 24 h 200: between 150 (100) and 250 (150): 50/100*50 + 100 = 125
        ("pm10", "24h", 200.0, 125),
        # CO 1 h 12 mg/m3: between 10 (100) and 35 (150): 50/25*2 + 100 = 104
        ("co", "1h", 12.0, 104),
        # CO 24 h 3 mg/m3: between 2 (50) and 4 (100): 50/2*1 + 50 = 75
        ("co", "24h", 3.0, 75),
        # NO2 24 h 100: between 80 (100) and 180 (150): 50/100*20 + 100 = 110
        ("no2", "24h", 100.0, 110),
        # O3 8 h 180: between 160 (100) and 215 (150): 50/55*20 + 100 = 118.18 -> 119
        ("o3", "8h", 180.0, 119),
        # O3 1 h 500: between 400 (200) and 800 (300): 100/400*100 + 200 = 225
        ("o3", "1h", 500.0, 225),
        # SO2 24 h 1000: between 800 (200) and 1600 (300): 100/800*200 + 200 = 225
        ("so2", "24h", 1000.0, 225),
        # SO2 1 h exactly 800 is still scored on the 1-hour row: 200
        ("so2", "1h", 800.0, 200),
        # zero is zero
        ("no2", "1h", 0.0, 0),
        # above the last breakpoint of a full row: capped at 500
        ("pm25", "24h", 650.0, 500),
    ],
)
def test_iaqi_hand_computed(pollutant, averaging, conc, expected):
    assert air.iaqi(pollutant, [conc], averaging).tolist() == [expected]


def test_so2_1h_above_800_uses_24h():
    # SO2 1 h = 1000 (> 800: not scored on the 1 h row); its 24 h mean 200 lies between
    # 150 (100) and 475 (150): 50/325*50 + 100 = 107.69 -> 108.
    assert math.isnan(air.iaqi("so2", [1000.0], "1h")[0])
    f = pl.DataFrame({"so2_1h_ugm3": [1000.0, 800.0], "so2_24h_ugm3": [200.0, 200.0]})
    out = air.aqi(f, report="hourly")
    assert out["iaqi_so2"].to_list() == [108.0, 200.0]
    assert out["aqi"].to_list() == [108.0, 200.0]


def test_so2_1h_above_800_without_24h_is_unscored():
    out = air.aqi(pl.DataFrame({"so2_1h_ugm3": [1000.0]}), report="hourly")
    assert out["iaqi_so2"].to_list() == [None]
    assert out["aqi"].to_list() == [None]


def test_o3_8h_above_800_uses_1h():
    # O3 8 h = 900 (> 800): the O3 8 h index is the 1 h one; O3 1 h 500 -> 225 (see above).
    f = pl.DataFrame({"o3_8h_ugm3": [900.0], "o3_1h_ugm3": [500.0]})
    for report in ("hourly", "daily"):
        out = air.aqi(f, report=report)
        assert out["iaqi_o3_8h"].to_list() == [225.0]
        assert out.select("aqi", "level", "category_zh", "colour", "colour_hex").row(0) == (225.0, "V", "重度污染", "purple", "#99004C")
        assert out["primary_pollutant"].to_list() == ["o3_1h,o3_8h"]


def test_primary_pollutant_only_above_50():
    # PM2.5 24 h 35 -> exactly 50: AQI 50, level I, no primary pollutant.
    # PM2.5 24 h 35.5 -> 51: level II and PM2.5 is primary.
    f = pl.DataFrame({"pm25_24h_ugm3": [35.0, 35.5], "so2_24h_ugm3": [10.0, 10.0]})
    out = air.aqi(f, report="daily")
    assert out.select("aqi", "primary_pollutant", "level", "category_zh").rows() == [
        (50.0, None, "I", "优"),
        (51.0, "pm25", "II", "良"),
    ]


def test_tied_primary_pollutants_are_all_named():
    # PM2.5 24 h 75 -> 100 and PM10 24 h 150 -> 100: both are primary.
    out = air.aqi(pl.DataFrame({"pm25_24h_ugm3": [75.0], "pm10_24h_ugm3": [150.0]}), report="daily")
    assert out["primary_pollutant"].to_list() == ["pm10,pm25"]


def test_hourly_pm_basis():
    # 1 h basis scores the hourly PM2.5 (80 -> 107) on the 24 h row; 24 h basis uses the moving mean (35 -> 50).
    f = pl.DataFrame({"pm25_1h_ugm3": [80.0], "pm25_24h_ugm3": [35.0]})
    assert air.aqi(f, pm_basis="1h")["aqi"].to_list() == [107.0]
    assert air.aqi(f, pm_basis="24h")["aqi"].to_list() == [50.0]
    # The default comes from the table (HJ 633-2012 real-time practice: 1 h).
    assert air.aqi_table().realtime_pm_basis == "1h"
    assert air.aqi(f)["aqi"].to_list() == [107.0]


def test_daily_report_ignores_1h_columns_except_o3():
    f = pl.DataFrame({"no2_1h_ugm3": [1000.0], "no2_24h_ugm3": [40.0]})
    # daily: NO2 24 h 40 -> 50; hourly: NO2 1 h 1000 between 700 (150) and 1200 (200): 50/500*300 + 150 = 180.
    assert air.aqi(f, report="daily")["aqi"].to_list() == [50.0]
    assert air.aqi(f, report="hourly")["aqi"].to_list() == [180.0]


@pytest.mark.parametrize(
    "value, level, category, colour_hex",
    [(0, "I", "优", "#00E400"), (50, "I", "优", "#00E400"), (51, "II", "良", "#FFFF00"), (100, "II", "良", "#FFFF00"),
     (101, "III", "轻度污染", "#FF7E00"), (150, "III", "轻度污染", "#FF7E00"), (151, "IV", "中度污染", "#FF0000"),
     (200, "IV", "中度污染", "#FF0000"), (201, "V", "重度污染", "#99004C"), (300, "V", "重度污染", "#99004C"),
     (301, "VI", "严重污染", "#7E0023"), (500, "VI", "严重污染", "#7E0023")],
)
def test_levels_and_colours(value, level, category, colour_hex):
    # Build a concentration whose IAQI is exactly `value` on the PM10 24 h row (linear between breakpoints).
    bp = [0, 50, 150, 250, 350, 420, 500, 600]
    iq = [0, 50, 100, 150, 200, 300, 400, 500]
    conc = float(np.interp(value, iq, bp))
    out = air.aqi(pl.DataFrame({"pm10_24h_ugm3": [conc]}), report="daily")
    assert out.select("aqi", "level", "category_zh", "colour_hex").row(0) == (float(value), level, category, colour_hex)


def test_missing_everything_gives_nulls_and_extra_columns_are_kept():
    out = air.aqi(pl.DataFrame({"sensor_id": ["A"], "pm25_24h_ugm3": [None]}, schema={"sensor_id": pl.String, "pm25_24h_ugm3": pl.Float64}))
    assert out.select("sensor_id", "aqi", "level", "primary_pollutant").row(0) == ("A", None, None, None)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="concentrations must be >= 0"):
        air.iaqi("pm25", [-1.0], "24h")
    with pytest.raises(ValueError, match="no breakpoints for 'pm25' over '1h'"):
        air.iaqi("pm25", [1.0], "1h")
    with pytest.raises(ValueError, match="unknown standard table 'hj633-2099'"):
        air.iaqi("pm25", [1.0], "24h", standard="hj633-2099")
    with pytest.raises(ValueError, match="report must be"):
        air.aqi(pl.DataFrame({"pm25_24h_ugm3": [1.0]}), report="weekly")


def test_table_is_data_and_matches_standard_rows():
    t = air.aqi_table("hj633-2012")
    # Spot-check rows against HJ 633-2012 Table 1 as quoted in STANDARDS.md.
    assert t.rows["no2_1h"].conc.tolist() == [0, 100, 200, 700, 1200, 2340, 3090, 3840]
    assert t.rows["co_24h"].conc.tolist() == [0, 2, 4, 14, 24, 36, 48, 60]
    assert t.rows["o3_8h"].conc.tolist() == [0, 100, 160, 215, 265, 800]
    assert t.rows["o3_8h"].fallback == "o3_1h"


ROWS = [("so2", "24h"), ("so2", "1h"), ("no2", "24h"), ("no2", "1h"), ("pm10", "24h"), ("co", "24h"), ("co", "1h"),
        ("o3", "1h"), ("o3", "8h"), ("pm25", "24h")]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ROWS), st.lists(st.floats(0, 5000, allow_nan=False), min_size=2, max_size=30))
def test_iaqi_monotone_and_bounded(row, concs):
    pollutant, averaging = row
    c = np.sort(np.asarray(concs))
    val = air.iaqi(pollutant, c, averaging)
    scored = ~np.isnan(val)
    assert np.all((val[scored] >= 0) & (val[scored] <= 500))
    assert np.all(np.diff(val[scored]) >= 0)
    # NaN only where the row is truncated and the concentration is above its top.
    top = air.aqi_table().rows[f"{pollutant}_{averaging}"]
    assert np.all(~scored == ((c > top.conc[-1]) & (top.fallback is not None)))


conc = st.one_of(st.none(), st.floats(0, 3000, allow_nan=False))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(*[conc] * 8), min_size=1, max_size=20), st.sampled_from(["hourly", "daily"]))
def test_aqi_is_max_iaqi(rows, report):
    cols = ["pm25_1h_ugm3", "pm25_24h_ugm3", "so2_1h_ugm3", "so2_24h_ugm3", "no2_1h_ugm3", "o3_1h_ugm3", "o3_8h_ugm3", "co_1h_mgm3"]
    f = pl.DataFrame(rows, schema={c: pl.Float64 for c in cols}, orient="row")
    out = air.aqi(f, report=report)
    iaqis = out.select([f"iaqi_{c}" for c in air.COMPONENTS]).to_numpy().astype(float)
    for i, a in enumerate(out["aqi"].to_list()):
        finite = iaqis[i][~np.isnan(iaqis[i])]
        if finite.size == 0:
            assert a is None
        else:
            assert a == finite.max()
            assert 0 <= a <= 500
            primary = out["primary_pollutant"][i]
            if a <= 50:
                assert primary is None
            else:
                named = primary.split(",")
                assert all(iaqis[i][air.COMPONENTS.index(n)] == a for n in named)


def test_exceeding_pollutants_are_those_above_100():
    # PM2.5 24 h 80 -> 107 (exceeds), PM10 24 h 160 -> 100 + 50/100*10 = 105 (exceeds), NO2 24 h 80 -> 100 (does not).
    out = air.aqi(pl.DataFrame({"pm25_24h_ugm3": [80.0, 10.0], "pm10_24h_ugm3": [160.0, 10.0], "no2_24h_ugm3": [80.0, 10.0]}), report="daily")
    assert out["exceeding_pollutants"].to_list() == ["pm10,pm25", None]
    assert out["primary_pollutant"].to_list() == ["pm25", None]


def test_another_edition_is_just_another_table(tmp_path):
    # A draft edition with tighter PM2.5 breakpoints, loaded from a file: same code, different numbers.
    import yaml

    from brain.vitals.tables import load_table

    draft = dict(load_table("hj633-2012"))
    draft["standard"] = "hj633-draft-test"
    draft["breakpoints"] = dict(draft["breakpoints"])
    draft["breakpoints"]["pm25_24h"] = {"unit": "ugm3", "conc": [0, 30, 60, 115, 150, 250, 350, 500], "above_top": "cap"}
    path = tmp_path / "draft.yaml"
    path.write_text(yaml.safe_dump(draft, allow_unicode=True), encoding="utf-8")
    # PM2.5 24 h 45: 2012 table 50/40*10 + 50 = 62.5 -> 63; draft 50/30*15 + 50 = 75.
    assert air.iaqi("pm25", [45.0], "24h").tolist() == [63.0]
    assert air.iaqi("pm25", [45.0], "24h", standard=str(path)).tolist() == [75.0]


def test_broken_table_is_rejected(tmp_path):
    import yaml

    from brain.vitals.tables import load_table

    bad = dict(load_table("hj633-2012"))
    bad["breakpoints"] = {"pm25_24h": {"unit": "ugm3", "conc": [0, 75, 35], "above_top": "cap"}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match="increasing breakpoints"):
        air.aqi_table(str(path))
    with pytest.raises(ValueError, match="does not exist"):
        air.aqi_table(str(tmp_path / "nope.yaml"))


# An independent plain-Python reference: the breakpoints typed from STANDARDS.md (HJ 633-2012 Table 1),
# not read from the YAML, and the formula evaluated one value at a time with exact fractions.
REFERENCE_ROWS = {
    ("so2", "24h"): [0, 50, 150, 475, 800, 1600, 2100, 2620],
    ("so2", "1h"): [0, 150, 500, 650, 800],
    ("no2", "24h"): [0, 40, 80, 180, 280, 565, 750, 940],
    ("no2", "1h"): [0, 100, 200, 700, 1200, 2340, 3090, 3840],
    ("pm10", "24h"): [0, 50, 150, 250, 350, 420, 500, 600],
    ("co", "24h"): [0, 2, 4, 14, 24, 36, 48, 60],
    ("co", "1h"): [0, 5, 10, 35, 60, 90, 120, 150],
    ("o3", "1h"): [0, 160, 200, 300, 400, 800, 1000, 1200],
    ("o3", "8h"): [0, 100, 160, 215, 265, 800],
    ("pm25", "24h"): [0, 35, 75, 115, 150, 250, 350, 500],
}
REFERENCE_IAQI = [0, 50, 100, 150, 200, 300, 400, 500]


def reference_iaqi(pollutant, averaging, c):
    """(rounded-up IAQI, exact IAQI as a Fraction); (None, None) where the row does not score it."""
    from fractions import Fraction

    bp = REFERENCE_ROWS[(pollutant, averaging)]
    if c > bp[-1]:
        return (None, None) if len(bp) < len(REFERENCE_IAQI) else (500, Fraction(500))
    c = Fraction(c)
    for k in range(1, len(bp)):
        if c <= bp[k]:
            lo_i, hi_i = REFERENCE_IAQI[k - 1], REFERENCE_IAQI[k]
            exact = Fraction(hi_i - lo_i, bp[k] - bp[k - 1]) * (c - bp[k - 1]) + lo_i
            return math.ceil(exact), exact
    raise AssertionError("unreachable")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(REFERENCE_ROWS)), st.lists(st.one_of(st.integers(0, 4000).map(float), st.floats(0, 4000, allow_nan=False)),
                                                           min_size=1, max_size=20))
def test_iaqi_matches_plain_python_reference(row, concs):
    pollutant, averaging = row
    got = air.iaqi(pollutant, concs, averaging)
    for c, g in zip(concs, got.tolist()):
        ref, exact = reference_iaqi(pollutant, averaging, c)
        if ref is None:
            assert math.isnan(g)
        elif exact - math.floor(exact) <= 1e-9 and exact != math.floor(exact):
            # Within the documented 1e-9 float tolerance above an integer: either rounding is acceptable.
            assert g in (ref, ref - 1), (c, g, ref)
        else:
            assert g == ref, (c, g, ref)


DAY0 = 1_767_196_800_000  # 2026-01-01 00:00 in Asia/Shanghai (2025-12-31 16:00 UTC)
HR = 3_600_000


def _hourly(hours, **cols):
    return pl.DataFrame({"sensor_id": ["A"] * len(hours), "window_start_ms": [DAY0 + h * HR for h in hours],
                         **{k: [float(v)] * len(hours) if not isinstance(v, list) else v for k, v in cols.items()}})


def test_daily_24h_mean_needs_20_hours():
    # 19 hours of PM2.5: no valid daily mean (GB 3095-2012 data validity); 20 hours: the mean.
    assert air.daily_concentrations(_hourly(range(19), pm25_ugm3=50), "Asia/Shanghai")["pm25_24h_ugm3"].to_list() == [None]
    got = air.daily_concentrations(_hourly(range(20), pm25_ugm3=[40.0] * 10 + [60.0] * 10), "Asia/Shanghai")
    assert got["pm25_24h_ugm3"].to_list() == [50.0]


def test_daily_o3_8h_validity():
    # Hours 0-12 only: the window starting at s has min(12, s+7) - s + 1 hours; s = 0..7 have >= 6,
    # so 8 valid windows < 14: no daily maximum 8-hour mean.
    d = air.daily_concentrations(_hourly(range(13), o3_ugm3=100), "Asia/Shanghai")
    assert d["o3_8h_ugm3"].to_list() == [None] and d["o3_1h_ugm3"].to_list() == [100.0]
    # Hours 0-21 (22 hours): every one of the 17 windows has >= 6 hours. O3 = 100 except 300 in hours
    # 14-21, so the best window (14-21) averages 300.
    o3 = [100.0] * 14 + [300.0] * 8
    d = air.daily_concentrations(_hourly(range(22), o3_ugm3=o3), "Asia/Shanghai")
    assert d["o3_8h_ugm3"].to_list() == [300.0]


def test_daily_uses_the_local_calendar_day():
    # 23:00 on 1 Jan and 00:00 on 2 Jan local are different days; in UTC both are 1 Jan (15:00 and 16:00).
    h = _hourly([23, 24], pm25_ugm3=10)
    assert air.daily_concentrations(h, "Asia/Shanghai")["date"].cast(pl.String).to_list() == ["2026-01-01", "2026-01-02"]
    assert air.daily_concentrations(h, "UTC")["date"].cast(pl.String).to_list() == ["2026-01-01"]
    with pytest.raises(ValueError, match="unknown time zone"):
        air.daily_concentrations(h, "Nowhere/Town")
