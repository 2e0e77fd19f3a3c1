"""The alert pipeline's data: severities, durations, label matchers, candidates, alerts, notifications.

Severity uses China's four warning levels (Emergency Response Law): level 1 = I red (most
severe), 2 = II orange, 3 = III yellow, 4 = IV blue. A smaller level number is more severe, so
"at least orange" means ``level <= 2``.

Example:
    >>> parse_severity("orange"), parse_severity("III"), parse_severity(4)
    (2, 3, 4)
    >>> parse_duration_ms("10m"), parse_duration_ms("1h30m"), parse_duration_ms(45)
    (600000, 5400000, 45000)
    >>> Matcher.parse("district=~D1|D2").matches({"district": "D2"})
    True
"""
from __future__ import annotations

import re
from typing import Literal

import msgspec

#: level -> (colour, roman numeral, Chinese name)
SEVERITY_LEVELS: dict[int, tuple[str, str, str]] = {
    1: ("red", "I", "红色"),
    2: ("orange", "II", "橙色"),
    3: ("yellow", "III", "黄色"),
    4: ("blue", "IV", "蓝色"),
}
_SEVERITY_NAMES = {}
for _lvl, (_colour, _roman, _zh) in SEVERITY_LEVELS.items():
    _SEVERITY_NAMES[_colour] = _lvl
    _SEVERITY_NAMES[_roman.lower()] = _lvl
    _SEVERITY_NAMES[_zh] = _lvl
    _SEVERITY_NAMES[str(_lvl)] = _lvl


def parse_severity(value: object) -> int:
    """Severity level 1 (red, I) .. 4 (blue, IV) from a colour, roman numeral or number."""
    if isinstance(value, bool):
        raise ValueError(f"severity must be red/orange/yellow/blue, I-IV or 1-4, got {value!r}")
    key = str(value).strip().lower()
    if key not in _SEVERITY_NAMES:
        raise ValueError(f"severity must be red/orange/yellow/blue, I-IV or 1-4, got {value!r}")
    return _SEVERITY_NAMES[key]


def severity_colour(level: int) -> str:
    return SEVERITY_LEVELS[level][0]


_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration_ms(value: object) -> int:
    """Milliseconds from ``"90s"``, ``"10m"``, ``"1h30m"``, ``"2d"`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"duration must look like 30s, 10m, 1h or be seconds, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value!r}")
        return int(round(value * 1000))
    text = str(value).strip()
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_MS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"duration must look like 30s, 10m, 1h or be seconds, got {value!r}")
    return int(round(total))


class Matcher(msgspec.Struct, frozen=True):
    """One label matcher in Alertmanager syntax: ``name=value``, ``!=``, ``=~`` (regex), ``!~``.

    A missing label matches as the empty string, as in Alertmanager.
    """

    name: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str

    @classmethod
    def parse(cls, text: str) -> "Matcher":
        m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*", str(text))
        if not m:
            raise ValueError(f"matcher must look like name=value, name!=value, name=~regex or name!~regex, got {text!r}")
        name, op, value = m.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"matcher {text!r}: bad regular expression: {exc}") from None
        return cls(name, op, value)  # type: ignore[arg-type]

    def matches(self, labels: dict[str, str]) -> bool:
        have = labels.get(self.name, "")
        if self.op == "=":
            return have == self.value
        if self.op == "!=":
            return have != self.value
        hit = re.fullmatch(self.value, have) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


def parse_matchers(items: object) -> tuple[Matcher, ...]:
    """Matchers from a list of strings or a ``{name: value}`` mapping (exact matches)."""
    if items is None:
        return ()
    if isinstance(items, dict):
        return tuple(Matcher(str(k), "=", str(v)) for k, v in items.items())
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"matchers must be a list of 'name=value' strings or a mapping, got {items!r}")
    return tuple(m if isinstance(m, Matcher) else Matcher.parse(m) for m in items)


def match_all(matchers: tuple[Matcher, ...], labels: dict[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


class Candidate(msgspec.Struct):
    """One rule's verdict for one key in one window.

    ``trigger`` is True when the firing condition holds; False when only the (weaker) hysteresis
    clear condition holds, which keeps an already active alert alive but never starts one.
    Build it with keywords; the compiled rule evaluator alone builds thousands per window
    positionally (``map(Candidate, ...)``, in field order), which is why the fields take positions.
    """

    rule_id: str
    kind: str
    severity: int
    labels: dict[str, str]
    value: float
    ts_ms: int
    trigger: bool = True
    summary: str = ""
    evidence: dict[str, float | str] = {}
    for_ms: int = 0
    keep_firing_for_ms: int = 0
    lon: float | None = None
    lat: float | None = None
    fingerprint: str = ""
    digest_ms: int = 0  # the rule's digest period: expected, not paged on its own (0: pages)


AlertStatus = Literal["pending", "firing", "acknowledged", "resolved"]
TIERS: tuple[str, ...] = ("street", "district", "city")


class Alert(msgspec.Struct, kw_only=True):
    """An alert's lifecycle state, keyed by its fingerprint (what is stored in Redis)."""

    fingerprint: str
    rule_id: str
    kind: str
    severity: int
    labels: dict[str, str]
    status: AlertStatus = "pending"
    summary: str = ""
    evidence: dict[str, float | str] = {}
    value: float = 0.0
    started_ms: int = 0  # first window the condition held (pending start)
    fired_ms: int = 0  # pending -> firing
    last_seen_ms: int = 0  # last window with a candidate
    resolved_ms: int = 0
    for_ms: int = 0
    keep_firing_for_ms: int = 0
    acked_by: str = ""
    acked_ms: int = 0
    tier: str = "street"
    tier_since_ms: int = -1
    flap_times_ms: list[int] = []  # recent re-fire times after a resolve
    flapping: bool = False
    inhibited_by: str = ""
    silenced_by: str = ""
    notified: bool = False  # a firing notification went out for this activation
    lon: float | None = None
    lat: float | None = None
    incident: str = ""  # correlation key: the real incident this alert belongs to (see correlation.py)
    incident_ms: int = 0  # when the incident key was first given to this alert
    digest_ms: int = 0  # expected (e.g. recurring rush-hour congestion): digest, unless part of a paged incident

    @property
    def active(self) -> bool:
        return self.status in ("firing", "acknowledged")


class Transition(msgspec.Struct, kw_only=True):
    """A state change of one alert, for the audit log and for routing."""

    fingerprint: str
    old: str
    new: str
    ts_ms: int
    actor: str = "engine"
    detail: str = ""


class Notification(msgspec.Struct, kw_only=True):
    """One message for one subscription; ``key`` is its idempotency key (stable across restarts).

    ``reason``: ``alert`` (actionable: a group's first notification, or one bringing a real incident the
    group has not reported), ``update`` (more alerts of incidents already reported, a more severe level
    — then ``raised`` is True —, resolutions, or a re-fire within the group's ``reopen_within``),
    ``escalation`` (a new incident reached this subscriber's tier unacknowledged), ``repeat`` (still
    firing after ``repeat_interval``), ``digest`` (periodic summary, also of expected alerts).
    """

    key: str
    subscription_id: str
    group_key: str
    status: Literal["firing", "resolved"]
    reason: Literal["alert", "update", "escalation", "repeat", "digest"]
    ts_ms: int
    alerts: list[Alert]
    group_labels: dict[str, str] = {}
    tier: str = ""
    raised: bool = False  # an update that raised the group's severity
