"""The shipped sensor_fault rule pages sensor maintenance, names the fault, and keeps the faulty
sensor's readings from paging the city departments (default packs, real rule engine and alert pipeline)."""
from __future__ import annotations

import polars as pl

from brain.alerts.pipeline import AlertPipeline
from brain.alerts.routing import Subscription
from brain.alerts.rules import RuleEngine
from brain.city import demo_city_path, load_city
from brain.faults import SENSOR_FAULTS_SCHEMA

T0 = 1_780_243_200_000
TICK = 300_000


def _subs():
    base = {"group_by": ["incident"], "group_wait": "0s", "group_interval": "10m", "channel": {"type": "log"}}
    return [Subscription.from_dict({**base, "id": "maint", "department": "Sensor maintenance", "categories": ["sensor_health"]}),
            Subscription.from_dict({**base, "id": "utilities", "department": "Utilities", "categories": ["utilities"],
                                    "min_severity": "yellow"})]


def _tables(city, fault: bool, now: int) -> dict[str, pl.DataFrame]:
    s = next(x for x in city.sensors if x.id == "WP-03")
    util = pl.DataFrame({"sensor_id": [s.id], "type": [s.type], "district": [s.district], "cell_id": [s.cell],
                         "window_end_ms": [now], "unit": ["kPa"], "quantity": ["pressure"], "value": [160.0],
                         "nominal": [300.0], "deviation_pct": [-46.7], "within_tolerance": [False]})
    rows = [(s.id, s.type, "utility", s.district, s.cell, None, s.lon, s.lat, "drift", 1.0, "down 47% against its peers", now)]
    faults = pl.DataFrame(rows if fault else [], schema=SENSOR_FAULTS_SCHEMA, orient="row")
    return {"utility_sensor": util, "sensor_faults": faults}


def _run(fault: bool):
    city = load_city(demo_city_path())
    engine = RuleEngine.from_path(city=city)
    alerts = AlertPipeline(_subs(), engine.inhibit_rules, correlate_rules=engine.correlate_rules, tick=TICK // 1000)
    notes = []
    for i in range(1, 7):
        now = T0 + i * TICK
        notes += alerts.process(engine.evaluate(_tables(city, fault, now), now), now)
    return [n for n in notes if n.status == "firing" and n.reason in ("alert", "escalation")]


def test_a_faulty_sensor_pages_maintenance_not_the_department():
    pages = _run(fault=True)
    maint = [n for n in pages if n.subscription_id == "maint"]
    assert len(maint) == 1
    fault_alerts = [a for a in maint[0].alerts if a.rule_id == "sensor_fault"]
    assert fault_alerts and fault_alerts[0].labels["fault"] == "drift" and fault_alerts[0].labels["sensor_id"] == "WP-03"
    assert "drift" in fault_alerts[0].summary
    assert [n for n in pages if n.subscription_id == "utilities"] == []


def test_the_same_reading_from_a_healthy_sensor_pages_the_department():
    pages = _run(fault=False)
    assert [n.subscription_id for n in pages] == ["utilities"]
