"""Silences (one-off, with start and end) and maintenance windows (recurring, local time of day).

A silenced alert keeps its lifecycle (it still fires, resolves and is listed) but no
notification goes out for it while the silence is active. Who created a silence and why is kept
for the audit log.

Example:
    >>> from brain.alerts.model import Alert
    >>> s = Silence.create(["district=D1"], starts_ms=0, ends_ms=3_600_000, created_by="ops", comment="works")
    >>> a = Alert(fingerprint="f", rule_id="r", kind="threshold", severity=3, status="firing", labels={"district": "D1"})
    >>> Silencer().apply({"f": a}, [s], [], now_ms=60_000) == {"f": s.id}
    True
    >>> w = MaintenanceWindow(id="nightly", matchers=["category=utilities"], start="01:00", end="03:00")
    >>> w.active_at(18 * 3_600_000)  # 18:00 UTC is 02:00 in UTC+8
    True
"""
from __future__ import annotations

import hashlib

import msgspec

from brain.alerts.model import Alert, match_all, parse_matchers


class Silence(msgspec.Struct, kw_only=True):
    """Mute alerts matching all ``matchers`` (Alertmanager syntax strings) between two instants (ms)."""

    id: str
    matchers: list[str]
    starts_ms: int
    ends_ms: int
    created_by: str
    comment: str = ""

    @classmethod
    def create(cls, matchers: list[str], starts_ms: int, ends_ms: int, created_by: str, comment: str = "") -> "Silence":
        parse_matchers(matchers)  # validates
        if not matchers:
            raise ValueError("a silence needs at least one matcher (it would mute everything)")
        if ends_ms <= starts_ms:
            raise ValueError("a silence must end after it starts")
        if not created_by:
            raise ValueError("a silence needs the name of who created it")
        sid = hashlib.blake2b(f"{sorted(matchers)}|{starts_ms}|{ends_ms}|{created_by}".encode(), digest_size=6).hexdigest()
        return cls(id=sid, matchers=list(matchers), starts_ms=int(starts_ms), ends_ms=int(ends_ms),
                   created_by=created_by, comment=comment)

    def active_at(self, now_ms: int) -> bool:
        return self.starts_ms <= now_ms < self.ends_ms


class MaintenanceWindow(msgspec.Struct, kw_only=True, dict=True):
    """A recurring window, e.g. nightly pipe flushing, in local time (``utc_offset_h``, China +8).

    ``weekdays`` 0 = Monday .. 6 = Sunday (empty: every day). ``end`` before ``start`` wraps midnight.
    """

    id: str
    matchers: list[str]
    start: str
    end: str
    weekdays: list[int] = []
    utc_offset_h: float = 8.0
    comment: str = ""

    def __post_init__(self) -> None:
        parse_matchers(self.matchers)
        if not self.matchers:
            raise ValueError(f"maintenance window {self.id!r} needs at least one matcher")
        self._start_min = _hhmm(self.start)
        self._end_min = _hhmm(self.end)
        if any(d not in range(7) for d in self.weekdays):
            raise ValueError(f"maintenance window {self.id!r}: weekdays are 0 (Monday) .. 6 (Sunday)")

    def active_at(self, now_ms: int) -> bool:
        local_min = (now_ms / 60_000.0) + self.utc_offset_h * 60
        day = int(local_min // 1440)
        minute = local_min - day * 1440
        s, e = self._start_min, self._end_min
        if s <= e:
            inside, start_day = s <= minute < e, day
        else:  # wraps midnight: the part after midnight belongs to the window that started yesterday
            inside = minute >= s or minute < e
            start_day = day if minute >= s else day - 1
        weekday = (start_day + 3) % 7  # 1970-01-01 was a Thursday
        return inside and (not self.weekdays or weekday in self.weekdays)


def _hhmm(text: str) -> int:
    try:
        h, m = str(text).split(":")
        h, m = int(h), int(m)
    except ValueError:
        raise ValueError(f"time of day must be HH:MM, got {text!r}") from None
    if not (0 <= h <= 24 and 0 <= m < 60) or h * 60 + m > 1440:
        raise ValueError(f"time of day must be HH:MM between 00:00 and 24:00, got {text!r}")
    return h * 60 + m


class Silencer:
    """Sets ``Alert.silenced_by`` from the active silences and maintenance windows; returns ``{fp: id}``."""

    def apply(self, alerts: dict[str, Alert], silences: list[Silence], windows: list[MaintenanceWindow],
              now_ms: int) -> dict[str, str]:
        active = [(s.id, parse_matchers(s.matchers)) for s in silences if s.active_at(now_ms)]
        active += [(f"maintenance:{w.id}", parse_matchers(w.matchers)) for w in windows if w.active_at(now_ms)]
        result: dict[str, str] = {}
        for a in alerts.values():
            a.silenced_by = ""
            for sid, matchers in active:
                if match_all(matchers, a.labels):
                    a.silenced_by = sid
                    result[a.fingerprint] = sid
                    break
        return result
