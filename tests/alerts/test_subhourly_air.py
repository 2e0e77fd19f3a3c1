"""A pollution episode pages the ecology department from the stations' 5-minute means before any
hourly AQI rule could (first the climb at two stations, then the 115 µg/m³ level), once, with the hourly alerts joining that page's incident (the real simulator,
pipeline, shipped rule packs and alert pipeline, from a cold start)."""
from __future__ import annotations

import polars as pl

from brain.alerts.pipeline import AlertPipeline
from brain.alerts.routing import Subscription
from brain.alerts.rules import RuleEngine
from brain.pipeline import CityPipeline
from streams.alerts.service import window_tables
from streams.sim import Simulator
from streams.sim.scenarios import Scenario

H = 3_600_000


def _ecology() -> Subscription:
    return Subscription.from_dict({"id": "ecology", "department": "Ecology", "categories": ["environment"],
                                   "min_severity": "yellow", "group_by": ["incident"], "group_wait": "1m",
                                   "group_interval": "10m", "repeat_interval": "12h", "channel": {"type": "log"}})


def _run(city, district: str | None, hours: float, seed: int):
    start = Simulator(city).start_ms
    scenarios = [] if district is None else [
        Scenario(type="pollution_episode", target=district, start_ms=start + H // 2, duration_s=10 * 3600, scenario_id="smog")]
    sim = Simulator(city, seed=seed, scenarios=scenarios, faults=[])
    pipe = CityPipeline(city)
    engine = RuleEngine.from_path(city=city)
    alerts = AlertPipeline([_ecology()], engine.inhibit_rules, correlate_rules=engine.correlate_rules, tick=300)
    notes, fired, air = [], {}, []
    for batch in sim.batches(sim.start_ms + int(hours * H), batch_s=300):
        res = pipe.ingest_frames(batch.frames)
        for w in res.windows + pipe.advance_to(batch.end_ms).windows:
            tables = window_tables(w)
            air.append(tables["air_sensor"])
            notes += alerts.process(engine.evaluate(tables, w.window_end_ms), w.window_end_ms)
            for t in alerts.last_transitions:
                if t.new == "firing":
                    a = alerts.state.alerts[t.fingerprint]
                    fired.setdefault(a.rule_id, []).append((w.window_end_ms, a.labels.get("district")))
    return sim.start_ms, [n for n in notes if n.status == "firing" and n.reason in ("alert", "escalation")], fired, air


def test_the_five_minute_table_holds_each_stations_window_means(city):
    _, _, _, air = _run(city, None, 1.0, seed=11)
    frame = pl.concat([a for a in air if a.height])
    stations = {s.id for s in city.sensors if s.type == "air"}
    assert set(frame["sensor_id"]) == stations  # every station, every tick it reported
    assert (frame["window_end_ms"] - frame["window_start_ms"]).unique().to_list() == [300_000]
    assert frame["pm25_ugm3"].is_between(0, 1000).all()


def test_an_episode_is_paged_from_five_minute_means_before_the_hourly_aqi(city):
    district = sorted({s.district for s in city.sensors if s.type == "air"})[1]
    start, pages, fired, _ = _run(city, district, 4.5, seed=23)
    early = fired.get("pm25_rising_episode", [])
    assert early, f"no sub-hourly warning; fired: {sorted(fired)}"
    first_ms, where = early[0]
    assert where == district
    hourly = [t for rule in ("aqi_moderate", "aqi_heavy", "aqi_regional_episode") for t, d in fired.get(rule, []) if d == district]
    # the hourly rules can only speak at an hour's close: the 5-minute view is earlier (or the hourly never fired yet)
    assert not hourly or first_ms < min(hourly), (first_ms - start, [h - start for h in hourly])
    # the climb at two stations (pm25_climbing_episode) is earlier still than the 115 µg/m³ level
    climb = fired.get("pm25_climbing_episode", [])
    assert climb and climb[0][1] == district and climb[0][0] < first_ms, (climb, first_ms - start)
    assert climb[0][0] - start <= int(1.75 * H), f"climb warned {(climb[0][0] - start) / 60_000:.0f} min after start"
    # one page for the episode; the level and hourly alerts that follow are updates of its incident
    assert len(pages) == 1, [(n.reason, [a.rule_id for a in n.alerts]) for n in pages]
    assert "pm25_climbing_episode" in [a.rule_id for a in pages[0].alerts]


def test_a_clean_morning_raises_no_sub_hourly_warning(city):
    _, pages, fired, _ = _run(city, None, 4.5, seed=29)
    assert "pm25_rising_episode" not in fired and "pm25_climbing_episode" not in fired
