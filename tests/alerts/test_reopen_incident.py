"""A cluster that resolves and re-forms a tick later is the same incident: an update, not a second page.

Seen on simulated day 921410 (``bench/alert_quality.py --seeds 5 --seed 921408``): WF-02's surge and two
background leak reports formed a "burst" in xiyuan (cell XY-12), which paged utilities and city command;
it resolved at +8 min, the same tick the real cluster fired in dongqiao (WF-02 + WP-02 + a leak report).
Correlation linked only *active* alerts, so the re-formed cluster had nothing to join and paged both
departments again. Now an alert resolved within the subscribers' ``reopen_within`` still explains a new
alert it is linked to (a correlate rule, here the burst → burst ``same_zone`` link) or that shares a
source with it. The shipped rule packs, the demo city and the real alert pipeline; the peer is the same
pipeline with the resolved alerts left out of correlation (as before), which pages twice.
"""
from __future__ import annotations

import pytest

from brain.alerts.model import Candidate
from brain.alerts.pipeline import AlertPipeline
from brain.alerts.routing import Subscription
from brain.alerts.rules import RuleEngine
from brain.city import demo_city_path, load_city

T0 = 1_780_243_200_000
TICK = 300_000
M = 60_000


@pytest.fixture(scope="module")
def engine():
    return RuleEngine.from_path(city=load_city(demo_city_path()))


def _subs(reopen="1h"):
    base = {"group_by": ["incident"], "group_wait": "1m", "group_interval": "10m", "repeat_interval": "12h",
            "reopen_within": reopen, "channel": {"type": "log"}}
    return [Subscription.from_dict({**base, **s}) for s in (
        {"id": "water-gas-power", "department": "Utilities", "categories": ["utilities"], "min_severity": "yellow"},
        {"id": "city-command", "department": "City command", "min_severity": "orange", "tier": "district"})]


def _burst(now, district, cell, sources, lon, lat):
    return Candidate(rule_id="water_main_burst", kind="multipoint", severity=2, value=2.0, ts_ms=now, lon=lon, lat=lat,
                     labels={"rule": "water_main_burst", "category": "utilities", "subcategory": "waterMainBurst",
                             "district": district, "cell": cell, "sources": sources})


FIRST = ("xiyuan", "XY-12", "cases:GC-a,cases:GC-b,flow:WF-02", 120.13, 30.30)  # WF-02 + two background leaks
SECOND = ("dongqiao", "DQ-08", "cases:GC-c,flow:WF-02,pressure:WP-02", 120.182972, 30.301038)  # the real burst
ELSEWHERE = ("gangkou", "GK-05", "cases:GC-d,flow:WF-01", 120.180985, 30.246472)  # WF-01: another supply zone


def _pages(engine, second, gap_ticks=0, resolved_anchors=True, reopen="1h"):
    """The first cluster fires for ticks 1-6 (long enough to escalate to city command); ``second`` fires from
    ``gap_ticks`` after it resolved, for 6 ticks."""
    pipe = AlertPipeline(_subs(reopen), engine.inhibit_rules, correlate_rules=engine.correlate_rules,
                         tick=TICK // 1000)
    if not resolved_anchors:  # the configuration before: only active alerts are correlated
        pipe.correlator.reopened = lambda *a: {}
    start = 7 + gap_ticks
    notes = []
    for tick in range(start + 12):
        now, cands = T0 + tick * TICK, []
        if 1 <= tick < 7:
            cands.append(_burst(now, *FIRST))
        if start <= tick < start + 6:
            cands.append(_burst(now, *second))
        notes += pipe.process(cands, now)
    pages = {}
    for n in notes:
        if n.status == "firing" and n.reason in ("alert", "escalation"):
            pages.setdefault(n.subscription_id, []).append(n)
    return pages, notes


def test_a_cluster_re_forming_the_tick_it_resolved_is_an_update_not_a_second_page(engine):
    pages, notes = _pages(engine, SECOND)
    assert {k: len(v) for k, v in pages.items()} == {"water-gas-power": 1, "city-command": 1}
    # the re-formed cluster reached each subscriber as an update in the first cluster's group
    for sub, (page,) in pages.items():
        later = [n for n in notes if n.subscription_id == sub and n.group_key == page.group_key and n is not page
                 and n.status == "firing"]
        assert later and all(n.reason == "update" for n in later)
        assert any("pressure:WP-02" in a.labels.get("sources", "") for n in later for a in n.alerts)


def test_before_resolved_alerts_explained_nothing_and_the_re_formed_cluster_paged_again(engine):
    pages, _ = _pages(engine, SECOND, resolved_anchors=False)
    assert {k: len(v) for k, v in pages.items()} == {"water-gas-power": 2, "city-command": 2}


def test_a_re_formed_cluster_within_the_reopen_window_joins_too(engine):
    pages, _ = _pages(engine, SECOND, gap_ticks=8)  # 40 min after the first resolved, within 1 h
    assert {k: len(v) for k, v in pages.items()} == {"water-gas-power": 1, "city-command": 1}


def test_after_the_reopen_window_or_in_another_zone_it_is_a_new_incident(engine):
    late, _ = _pages(engine, SECOND, gap_ticks=14)  # 70 min later: a new burst
    assert {k: len(v) for k, v in late.items()} == {"water-gas-power": 2, "city-command": 2}
    other, _ = _pages(engine, ELSEWHERE)  # another meter's zone, no source in common, the same tick
    assert {k: len(v) for k, v in other.items()} == {"water-gas-power": 2, "city-command": 2}
    off, _ = _pages(engine, SECOND, reopen="0s")  # subscribers that keep no closed groups
    assert {k: len(v) for k, v in off.items()} == {"water-gas-power": 2, "city-command": 2}
