import calendar

import pytest

from brain.alerts.silences import MaintenanceWindow, Silence, Silencer
from tests.alerts.helpers import alert

H = 3_600_000


def utc_ms(y, mo, d, h, mi=0):
    return calendar.timegm((y, mo, d, h, mi, 0)) * 1000


def test_silence_mutes_matching_alerts_only_while_active():
    s = Silence.create(["district=D1", "category=~traffic|environment"], starts_ms=H, ends_ms=2 * H, created_by="li")
    a, b, c = alert("a", district="D1", category="traffic"), alert("b", district="D2", category="traffic"), \
        alert("c", district="D1", category="grid")
    alerts = {x.fingerprint: x for x in (a, b, c)}
    sil = Silencer()
    assert sil.apply(alerts, [s], [], H - 1) == {}
    assert sil.apply(alerts, [s], [], H) == {"a": s.id}
    assert sil.apply(alerts, [s], [], 2 * H) == {}
    assert a.silenced_by == ""


def test_silence_validation():
    with pytest.raises(ValueError, match="matcher"):
        Silence.create([], 0, 1, "li")
    with pytest.raises(ValueError, match="end after"):
        Silence.create(["a=b"], 5, 5, "li")
    with pytest.raises(ValueError, match="who"):
        Silence.create(["a=b"], 0, 5, "")
    with pytest.raises(ValueError, match="regular expression"):
        Silence.create(["a=~("], 0, 5, "li")


def test_maintenance_window_local_time_weekdays_and_midnight_wrap():
    # 2026-11-23 is a Monday. Window Mon 23:00 -> Tue 01:00 Beijing time (UTC+8).
    w = MaintenanceWindow(id="flush", matchers=["category=utilities"], start="23:00", end="01:00", weekdays=[0])
    assert w.active_at(utc_ms(2026, 11, 23, 15, 30))  # Mon 23:30 local
    assert w.active_at(utc_ms(2026, 11, 23, 16, 59))  # Tue 00:59 local, window began Monday
    assert not w.active_at(utc_ms(2026, 11, 23, 17, 0))  # Tue 01:00 local
    assert not w.active_at(utc_ms(2026, 11, 24, 15, 30))  # Tue 23:30 local: not a Monday start
    assert not w.active_at(utc_ms(2026, 11, 23, 14, 59))  # Mon 22:59 local
    a = alert("u", category="utilities")
    assert Silencer().apply({"u": a}, [], [w], utc_ms(2026, 11, 23, 15, 30)) == {"u": "maintenance:flush"}


def test_maintenance_window_validation():
    import msgspec
    with pytest.raises(ValueError, match="HH:MM"):
        MaintenanceWindow(id="x", matchers=["a=b"], start="25:00", end="01:00")
    with pytest.raises(ValueError, match="weekdays"):
        MaintenanceWindow(id="x", matchers=["a=b"], start="01:00", end="02:00", weekdays=[7])
    with pytest.raises(msgspec.ValidationError, match="HH:MM"):
        msgspec.convert({"id": "x", "matchers": ["a=b"], "start": "1am", "end": "02:00"}, MaintenanceWindow)
