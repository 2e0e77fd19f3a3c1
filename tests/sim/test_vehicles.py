"""The simulator's ambulance and bus streams: valid records, deterministic, and the escort they drive."""
from __future__ import annotations

import msgspec
import pytest

from brain.greenwave.escort import Escort
from brain.greenwave.model import corridor_from_city
from brain.greenwave.optimizer import optimize_corridor
from brain.schemas import Record
from streams.controllers.hub import ControllerHub
from streams.controllers.priority import EscortLink, PriorityDispatch, PriorityHandler
from streams.sim import Simulator, to_jsonl
from streams.sim.frames import KIND_SCHEMAS
from streams.sim.vehicles import VehicleRun, demo_vehicles

START = 1_780_243_200_000


def _sim(city, **kw):
    return Simulator(city, seed=5, start_ms=START, scenarios=[], vehicles=demo_vehicles(city, START), **kw)


def test_vehicle_positions_are_valid_records_and_batch_independent(city):
    whole = _sim(city).run(hours=0.5)["vehicle_position"]
    assert dict(whole.schema) == dict(KIND_SCHEMAS["vehicle_position"])
    assert set(whole["vehicle_type"]) == {"ambulance", "bus"}
    dec = msgspec.json.Decoder(Record)
    recs = [dec.decode(line) for line in to_jsonl({"vehicle_position": whole}).splitlines()]
    assert all(0 <= r.heading_deg < 360 and r.speed_kmh >= 0 for r in recs)
    small = _sim(city, readahead_s=0)
    parts = [b.frames["vehicle_position"] for b in small.batches(START + 1_800_000, batch_s=60)
             if "vehicle_position" in b.frames]
    import polars as pl

    assert pl.concat(parts).equals(whole)  # same records whatever the batch size
    assert "vehicle_position" not in Simulator(city, seed=5, start_ms=START, scenarios=[]).run(hours=0.2)


def test_bad_vehicle_run_is_refused(city):
    route = demo_vehicles(city, START)[0].route
    with pytest.raises(ValueError, match="speed_kmh and every_s must be > 0"):
        VehicleRun("A", "ambulance", route, START, 0.0)


def test_simulated_ambulance_is_escorted_across_two_corridors(city, redis_client):
    amb = demo_vehicles(city, START)[0]
    specs = {c.id: corridor_from_city(city, c.id) for c in city.corridors}
    plans = {cid: optimize_corridor(s, valid_from_ms=0) for cid, s in specs.items()}
    hub = ControllerHub(redis_client, b"test-master-secret-0123456789")
    esc = Escort(amb.route, specs, plans, amb.vehicle_id, incident_id="INC-DEMO")
    escorted = [s for leg in esc.legs for s in leg.signals]
    link = EscortLink(esc, PriorityDispatch(hub), {iid: PriorityHandler(iid, hub.key(iid)) for iid in escorted})
    frames = _sim(city).run(hours=0.5)
    rows = frames["vehicle_position"].to_dicts()
    for row in rows:
        link.feed({"kind": "vehicle_position", **row})
    asked = {r.intersection for r in esc.log if r.action != "restore"}
    released = {r.intersection for r in esc.log if r.action == "restore"}
    assert asked == set(escorted[1:]) and released == set(escorted)
    assert esc.active() == []
    log = link.dispatch.log()
    assert sum(e["event"] == "controller" for e in log) == len(esc.log)


def test_simulated_bus_gets_bounded_priority_along_jiefang(city, redis_client):
    bus = demo_vehicles(city, START)[1]
    specs = {c.id: corridor_from_city(city, c.id) for c in city.corridors}
    plans = {cid: optimize_corridor(s, valid_from_ms=0) for cid, s in specs.items()}
    hub = ControllerHub(redis_client, b"test-master-secret-0123456789")
    esc = Escort(bus.route, specs, plans, bus.vehicle_id, kind="bus", max_cross_delay_s=8.0, pre_s=2.0, post_s=2.0)
    assert [leg.corridor for leg in esc.legs] == ["jiefang"]
    link = EscortLink(esc, PriorityDispatch(hub), {iid: PriorityHandler(iid, hub.key(iid)) for iid in esc.legs[0].signals})
    for row in _sim(city).run(hours=0.5)["vehicle_position"].to_dicts():
        link.feed({"kind": "vehicle_position", **row})
    assert esc.log and {r.kind for r in esc.log} == {"bus"}
    assert max(r.cross_delay_s for r in esc.log) <= 8.0 + 1e-9
    assert {r.intersection for r in esc.log if r.action == "restore"} == set(esc.legs[0].signals)
    assert esc.active() == []
