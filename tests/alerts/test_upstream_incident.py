"""One accident, one page: a queue growing 3 km back along the road stays one incident.

The demo city's real road graph and the shipped rule packs, through the real rule engine and alert
pipeline: an unreported slowdown on a segment, the accident reported a few minutes later, then the
queue spreading one segment further upstream every 5 minutes until it reaches ~3 km back, with an
unrelated slowdown elsewhere in the city meanwhile. The traffic police must get one page for the
accident (the rest are updates in its group) and one for the unrelated slowdown; correlating by
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
    return [Subscription.from_dict({**base, "id": "traffic-police", "department": "Traffic police",
                                    "categories": ["traffic", "emergency"], "min_severity": "yellow"})]


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
    incidents = pl.DataFrame({"incident_id": ["INC-acc"], "type": ["traffic_accident"], "severity": [3], "status": [status],
                              "segment_id": [head.id], "lon": [head.line[-1][0]], "lat": [head.line[-1][1]], "units": [3]})
    return {"anomaly": anomaly, **({"incidents": incidents} if tick >= 1 else {})}


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
    accident = [n for n in pages if any(a.labels.get("segment_id") in path for a in n.alerts)]
    other = [n for n in pages if any(a.labels.get("segment_id") == far for a in n.alerts)]
    return path, net, accident, other, notes


def test_the_queue_behind_an_accident_pages_once(city):
    path, net, accident, other, notes = _pages(city, road_graph=True)
    assert net.upstream(path[0], 10_000.0)[path[-1]] >= 2900.0  # the queue really reaches ~3 km back
    assert len(accident) == 1, [sorted({a.rule_id for a in n.alerts}) for n in accident]
    # the queue's later segments arrived as updates in that group, not as pages
    grouped = {a.labels.get("segment_id") for n in notes if n.group_key == accident[0].group_key for a in n.alerts}
    assert set(path) <= grouped
    # an unrelated slowdown elsewhere is its own incident
    assert len(other) == 1 and other[0].group_key != accident[0].group_key


def test_straight_line_radius_alone_pages_the_queue_more_than_once(city):
    _, _, accident, _, _ = _pages(city, road_graph=False)
    assert len(accident) > 1
