"""Subscriptions and routing: who gets which alerts, where, at which tier, and how.

A subscription says *who* (department, role, contact), *what* (categories, rule kinds, rule ids,
minimum severity, and label ``matchers`` in Alertmanager syntax that must all hold — so the traffic
police take the incidents that concern them, ``type=~|traffic_accident``, not every incident of the
city; a missing label matches as the empty string), *where* (any of the listed districts, streets, cells, or inside a polygon of
``[lon, lat]`` points), *which tier* it serves (a ``district`` subscription only receives alerts
once they start at or escalate to the district tier; no tier = every tier) and *how* (a channel:
webhook JSON — CityBrain's own payload or Alertmanager v4 —, CAP 1.2 XML over HTTP, a Redis
Stream, or ``log``), plus grouping (by default one group per real incident: ``group_by: [incident]``)
and its timers, throttling and digests.

Example:
    >>> from brain.alerts.model import Alert
    >>> sub = Subscription.from_dict({"id": "traffic-d1", "department": "Traffic police", "categories": ["traffic"],
    ...     "min_severity": "yellow", "districts": ["D1"], "channel": {"type": "webhook", "url": "http://127.0.0.1:9/x"}})
    >>> a = Alert(fingerprint="f", rule_id="r", kind="threshold", severity=2, status="firing",
    ...           labels={"category": "traffic", "district": "D1"})
    >>> Router().matches(sub, a), Router().matches(sub, Alert(**{**msgspec.structs.asdict(a), "severity": 4}))
    (True, False)
    >>> police = Subscription.from_dict({"id": "police", "department": "Traffic police", "categories": ["emergency"],
    ...     "matchers": ["type=~|traffic_accident"], "channel": {"type": "log"}})
    >>> fire = Alert(fingerprint="i", rule_id="incident_active", kind="threshold", severity=2, status="firing",
    ...              labels={"category": "emergency", "type": "fire"})
    >>> crash = Alert(**{**msgspec.structs.asdict(fire), "labels": {"category": "emergency", "type": "traffic_accident"}})
    >>> Router().matches(police, fire), Router().matches(police, crash)
    (False, True)
"""
from __future__ import annotations

import re
from typing import Literal

import msgspec

from brain.alerts.model import TIERS, Alert, match_all, parse_duration_ms, parse_matchers, parse_severity


class Channel(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How notifications are delivered. ``format`` applies to webhooks (``citybrain`` or ``alertmanager``)."""

    type: Literal["webhook", "cap", "redis_stream", "log"]
    url: str = ""
    format: Literal["citybrain", "alertmanager"] = "citybrain"
    stream: str = ""
    timeout_s: float = 30.0  # a receiver slower than this gets a longer wait next time (streams.alerts.delivery)
    headers: dict[str, str] = {}


class Subscription(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, dict=True):
    """One subscriber's filters, channel and timers; build with :meth:`from_dict` to validate."""

    id: str
    department: str
    channel: Channel
    role: str = ""
    contact: str = ""
    categories: list[str] = []
    kinds: list[str] = []
    rules: list[str] = []
    # label matchers ("type=~|traffic_accident", "subcategory!=incident"): all must hold
    matchers: list[str] = []
    min_severity: str = "blue"
    districts: list[str] = []
    streets: list[str] = []
    cells: list[str] = []
    polygon: list[list[float]] = []
    tier: str | None = None
    # labels; "incident" is the correlation key (brain.alerts.correlation): one group per real incident
    group_by: list[str] = msgspec.field(default_factory=lambda: ["incident"])
    group_wait: str = "30s"
    group_interval: str = "5m"
    repeat_interval: str = "4h"
    reopen_within: str = "1h"  # a notified group is kept this long after its last resolve: a re-fire is an update
    send_resolved: bool = True
    throttle: str | None = None  # "N/period", e.g. "20/1h": more than N in a period go to the digest
    digest: str | None = None  # digest period; set it alone to receive only periodic digests
    digest_only: bool = False
    utc_offset_h: float = 8.0  # local time of the digest boundaries (a daily digest goes out at local midnight)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", self.id or ""):
            raise ValueError(f"subscription id must be letters, digits, '_', '-' or '.', got {self.id!r}")
        if not self.department:
            raise ValueError(f"subscription {self.id}: department is required")
        self._min_level = parse_severity(self.min_severity)
        try:
            self._matchers = parse_matchers(self.matchers)
        except ValueError as exc:
            raise ValueError(f"subscription {self.id}: {exc}") from None
        if self.tier is not None and self.tier not in TIERS:
            raise ValueError(f"subscription {self.id}: tier must be one of {', '.join(TIERS)}")
        self._group_wait_ms = parse_duration_ms(self.group_wait)
        self._group_interval_ms = parse_duration_ms(self.group_interval)
        self._repeat_interval_ms = parse_duration_ms(self.repeat_interval)
        self._reopen_ms = parse_duration_ms(self.reopen_within)
        if self.polygon:
            if len(self.polygon) < 3 or any(len(p) != 2 for p in self.polygon):
                raise ValueError(f"subscription {self.id}: polygon needs at least 3 [lon, lat] points")
        self._throttle: tuple[int, int] | None = None
        if self.throttle:
            m = re.fullmatch(r"\s*(\d+)\s*/\s*(\S+)\s*", self.throttle)
            if not m or int(m.group(1)) < 1:
                raise ValueError(f"subscription {self.id}: throttle must look like '20/1h', got {self.throttle!r}")
            self._throttle = (int(m.group(1)), parse_duration_ms(m.group(2)))
        period = self.digest or (self.throttle.split("/")[1].strip() if self.throttle else None)
        self._digest_ms = parse_duration_ms(period) if period else 0
        if not -14 <= self.utc_offset_h <= 14:
            raise ValueError(f"subscription {self.id}: utc_offset_h must be between -14 and 14, got {self.utc_offset_h}")
        if self.digest_only and not self.digest:
            raise ValueError(f"subscription {self.id}: digest_only needs a digest period")
        ch = self.channel
        if ch.type in ("webhook", "cap") and not re.match(r"https?://", ch.url):
            raise ValueError(f"subscription {self.id}: a {ch.type} channel needs an http(s) url")
        if ch.type == "redis_stream" and not ch.stream:
            raise ValueError(f"subscription {self.id}: a redis_stream channel needs a stream name")

    @classmethod
    def from_dict(cls, data: dict) -> "Subscription":
        """Validate a mapping (from YAML/JSON); raises ValueError with the offending field."""
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as exc:
            head = f"subscription {data.get('id', '?') if isinstance(data, dict) else '?'}: "
            msg = str(exc)  # the checks of __post_init__ name the subscription already
            raise ValueError(msg if msg.startswith(head) else head + msg) from None

    def to_dict(self) -> dict:
        return msgspec.to_builtins(self)


class Router:
    """Decides whether a subscription wants an alert (severity, category, kind, area, tier)."""

    def matches(self, sub: Subscription, a: Alert) -> bool:
        if a.severity > sub._min_level:
            return False
        lab = a.labels
        if sub.categories and lab.get("category", "") not in sub.categories:
            return False
        if sub.kinds and a.kind not in sub.kinds:
            return False
        if sub.rules and a.rule_id not in sub.rules:
            return False
        if sub._matchers and not match_all(sub._matchers, lab):
            return False
        if sub.tier is not None and TIERS.index(a.tier if a.tier in TIERS else "street") < TIERS.index(sub.tier):
            return False
        if sub.districts or sub.streets or sub.cells or sub.polygon:
            where = (
                (sub.districts and lab.get("district") in sub.districts)
                or (sub.streets and lab.get("street") in sub.streets)
                or (sub.cells and lab.get("cell") in sub.cells)
                or (sub.polygon and a.lon is not None and point_in_polygon(a.lon, a.lat, sub.polygon))
            )
            if not where:
                return False
        return True


def point_in_polygon(lon: float, lat: float, ring: list[list[float]]) -> bool:
    """Even-odd ray casting over one ring of ``[lon, lat]`` points (closed or not)."""
    inside = False
    n = len(ring)
    j = n - 1
    for i in range(n):
        xi, yi = ring[i]
        xj, yj = ring[j]
        if (yi > lat) != (yj > lat) and lon < xi + (lat - yi) * (xj - xi) / (yj - yi):
            inside = not inside
        j = i
    return inside
