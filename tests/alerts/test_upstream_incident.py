"""One accident, one page: a queue growing 3 km back along the road stays one incident.

The demo city's real road graph and the shipped rule packs, through the real rule engine and alert
pipeline: an unreported slowdown on a segment, the accident reported a few minutes later, then the
queue spreading one segment further upstream every 5 minutes until it reaches ~3 km back, with an
unrelated slowdown and a medical call elsewhere in the city meanwhile. The traffic police and
emergency management must each get one page for the accident (the rest are updates in its group),
the traffic police one for the unrelated slowdown and none for the medical call (their label
matcher); emergency management is paged for the medical call; correlating by
straight-line radius alone (the configuration before, kept here as the peer) pages more.
"""
from __future__ import annotations

import polars as pl
import pytest

from brain.alerts.pipeline import AlertPipeline
from brain.alerts.roadgraph import RoadNetwork
from brain.alerts.routing import Subscription
from brain.alerts.rules import RuleEngine
from brain.city import demo_city_path, load_city

T0 = 1_780_243_200_000
TICK = 300_000


@pytest.fixture(scope="module")
def city():
    return load_city(demo_city_path())


def _queue_path(net: RoadNetwork, min_m: float = 2900.0) -> list[str]:
    """A head segment and a chain of feeders reaching at least ``min_m`` back (longest first found)."""
    for head in sorted(net.feeders):
        path, dist, cur = [head], 0.0, head
        while dist < min_m:
            feeders = [f for f in net.feeders.get(cur, ()) if f not in path]
            if not feeders:
                break
            cur = feeders[0]
            path.append(cur)
            dist = net.upstream(head, 10_000.0)[cur]
        if dist >= min_m:
            return path
    raise AssertionError("no segment of the demo city has a 3 km upstream chain")


def _subs():
    base = {"group_by": ["incident"], "group_wait": "1m", "group_interval": "10m", "repeat_interval": "12h",
            "channel": {"type": "log"}}
    return [Subscription.from_dict({**base, **s}) for s in (
        # the traffic police take road incidents, not every call of the city (label matcher)
        {"id": "traffic-police", "department": "Traffic police", "categories": ["traffic", "emergency"],
         "min_severity": "yellow", "matchers": ["type=~|traffic_accident"]},
        {"id": "emergency-mgmt", "department": "Emergency management", "categories": ["emergency"], "min_severity": "orange"},
        {"id": "city-command", "department": "City command", "min_severity": "orange", "tier": "district"})]


def _tables(city, path, far, tick):
    seg = {s.id: s for s in city.segments}
    jammed = path[:tick + 1] if tick < 10 else []
    keys = jammed + ([far] if 3 <= tick < 8 else [])
    anomaly = pl.DataFrame({"key": keys, "metric": ["speed_kmh"] * len(keys), "window_end_ms": [T0 + tick * TICK] * len(keys),
                            "value": [8.0] * len(keys), "expected": [45.0] * len(keys), "z": [-6.0] * len(keys),
                            "score": [0.5] * len(keys), "reason": ["level_shift"] * len(keys), "ongoing": [0.5] * len(keys)},
                           schema={"key": pl.Utf8, "metric": pl.Utf8, "window_end_ms": pl.Int64, "value": pl.Float64,
                                   "expected": pl.Float64, "z": pl.Float64, "score": pl.Float64, "reason": pl.Utf8,
                                   "ongoing": pl.Float64})
    head = seg[path[0]]
    status = "closed" if tick >= 10 else "on_scene"
    # a level II accident (orange: emergency management is told too) and, meanwhile, a medical call
    # elsewhere that is no business of the traffic police
    rows = [("INC-acc", "traffic_accident", 2, status, head.id, head.line[-1][0], head.line[-1][1], 3)] if tick >= 1 else []
    if far is not None and 2 <= tick < 12:
        f = seg[far]
        rows.append(("INC-med", "medical", 2, "on_scene", None, f.line[0][0], f.line[0][1], 1))
    incidents = pl.DataFrame(rows, schema={"incident_id": pl.Utf8, "type": pl.Utf8, "severity": pl.Int64, "status": pl.Utf8,
                                           "segment_id": pl.Utf8, "lon": pl.Float64, "lat": pl.Float64, "units": pl.Int64},
                             orient="row")
    return {"anomaly": anomaly, **({"incidents": incidents} if rows else {})}


def _pages(city, road_graph: bool):
    engine = RuleEngine.from_path(city=city)
    rules = engine.correlate_rules if road_graph else [c for c in engine.correlate_rules if c.upstream_m is None]
    net = engine.network
    path = _queue_path(net)
    near = set(net.upstream(path[0], 5000.0)) | set(path)
    far = next(s.id for s in city.segments if s.id not in near and s.district != city.segments[0].district) \
        if any(s.district != city.segments[0].district for s in city.segments) else None
    alerts = AlertPipeline(_subs(), engine.inhibit_rules, correlate_rules=rules, tick=TICK // 1000)
    notes = []
    for tick in range(16):
        now = T0 + tick * TICK
        notes += alerts.process(engine.evaluate(_tables(city, path, far, tick), now), now)
    pages = [n for n in notes if n.status == "firing" and n.reason in ("alert", "escalation")]
    about = lambda n, pred: any(pred(a.labels) for a in n.alerts)  # noqa: E731
    acc = lambda lab: lab.get("segment_id") in path or lab.get("incident_id") == "INC-acc"  # noqa: E731
    by_sub = {s.id: [n for n in pages if n.subscription_id == s.id and about(n, acc)] for s in _subs()}
    police = [n for n in pages if n.subscription_id == "traffic-police"]
    accident = [n for n in police if about(n, acc)]
    other = [n for n in police if about(n, lambda lab: lab.get("segment_id") == far)]
    medical = {n.subscription_id for n in pages if about(n, lambda lab: lab.get("incident_id") == "INC-med")}
    return path, net, accident, other, notes, by_sub, medical


def test_the_queue_behind_an_accident_pages_once(city):
    path, net, accident, other, notes, by_sub, medical = _pages(city, road_graph=True)
    assert net.upstream(path[0], 10_000.0)[path[-1]] >= 2900.0  # the queue really reaches ~3 km back
    assert len(accident) == 1, [sorted({a.rule_id for a in n.alerts}) for n in accident]
    # each subscriber told about the accident is paged once (emergency management takes level II)
    assert len(by_sub["emergency-mgmt"]) == 1, [sorted({a.rule_id for a in n.alerts}) for n in by_sub["emergency-mgmt"]]
    assert all(len(v) <= 1 for v in by_sub.values()), {k: len(v) for k, v in by_sub.items()}
    # the medical call pages emergency management, not the traffic police
    assert "emergency-mgmt" in medical and "traffic-police" not in medical
    # the queue's later segments arrived as updates in that group, not as pages
    grouped = {a.labels.get("segment_id") for n in notes if n.group_key == accident[0].group_key for a in n.alerts}
    assert set(path) <= grouped
    # an unrelated slowdown elsewhere is its own incident
    assert len(other) == 1 and other[0].group_key != accident[0].group_key


def test_straight_line_radius_alone_pages_the_queue_more_than_once(city):
    _, _, accident, _, _, _, _ = _pages(city, road_graph=False)
    assert len(accident) > 1
