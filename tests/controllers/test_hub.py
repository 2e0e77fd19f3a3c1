"""The controllers sink on a real Redis: who may fetch, what an acknowledgement must match, which
alerts appear and go away, and status reports that become valid signal_status records."""
from __future__ import annotations

import msgspec
import numpy as np
import pytest

from brain.greenwave.optimizer import optimize_corridor
from brain.schemas import Record, SignalStatus
from streams.controllers.emulator import EmulatedController
from streams.controllers.hub import ControllerError, ControllerHub
from streams.controllers.protocol import AckMessage, request_mac, sign
from tests.greenwave.helpers import random_spec

MASTER = b"test-master-secret-0123456789"


@pytest.fixture
def setup(redis_client):
    spec = random_spec(np.random.default_rng(2), 3)
    plan = optimize_corridor(spec, valid_from_ms=5_000)
    hub = ControllerHub(redis_client, MASTER, ack_within_ms=10_000, known={it.id for it in spec.intersections})
    hub.push(plan, now_ms=1_000)
    return spec, plan, hub


def fetch(hub, iid, t, key=None):
    key = key or hub.key(iid)
    return hub.fetch(iid, t, request_mac(key, "GET", iid, t), now_ms=t)


def test_fetch_needs_the_controllers_own_key_and_a_fresh_clock(setup):
    spec, plan, hub = setup
    a, b = spec.intersections[0].id, spec.intersections[1].id
    assert fetch(hub, a, 2_000).plan_id == plan.plan_id
    with pytest.raises(ControllerError) as e:
        fetch(hub, a, 2_000, key=hub.key(b))
    assert e.value.status == 401
    with pytest.raises(ControllerError) as e:
        hub.fetch(a, 2_000, request_mac(hub.key(a), "GET", a, 2_000), now_ms=200_000)
    assert e.value.status == 401 and "clock" in str(e.value)
    with pytest.raises(ControllerError) as e:
        fetch(hub, "NOT-HERE", 2_000)
    assert e.value.status == 404


def test_unacknowledged_plans_alert_until_acknowledged(setup):
    spec, plan, hub = setup
    ids = [it.id for it in spec.intersections]
    assert hub.candidates(now_ms=5_000) == []                     # before the deadline: quiet
    late = hub.candidates(now_ms=12_000)
    assert sorted(c.labels["intersection"] for c in late) == sorted(ids)
    assert all(c.rule_id == "controller_plan_unacknowledged" and c.value == pytest.approx(1.0) for c in late)
    ctl = EmulatedController(ids[0], hub.key(ids[0]))
    ack = ctl.receive(fetch(hub, ids[0], 12_500), 12_500)
    assert hub.acknowledge(ack, now_ms=12_600) == "accepted"
    assert sorted(c.labels["intersection"] for c in hub.candidates(now_ms=13_000)) == sorted(ids[1:])


def test_an_acknowledgement_must_be_signed_and_answer_the_current_plan(setup):
    spec, plan, hub = setup
    iid = spec.intersections[0].id
    msg = fetch(hub, iid, 2_000)
    good = AckMessage(intersection_id=iid, plan_id=msg.plan_id, seq=msg.seq, status="accepted", ack_ms=2_000)
    with pytest.raises(ControllerError) as e:
        hub.acknowledge(sign(good, hub.key(spec.intersections[1].id)), now_ms=2_000)
    assert e.value.status == 401
    hub.push(plan, now_ms=3_000)                                   # a newer message supersedes it
    with pytest.raises(ControllerError) as e:
        hub.acknowledge(sign(good, hub.key(iid)), now_ms=3_100)
    assert e.value.status == 409


def test_a_rejected_plan_alerts_with_the_controllers_reason(setup):
    spec, plan, hub = setup
    iid = spec.intersections[1].id
    msg = fetch(hub, iid, 2_000)
    rej = sign(AckMessage(intersection_id=iid, plan_id=msg.plan_id, seq=msg.seq, status="rejected", ack_ms=2_000,
                          reason="detector faults: coordination disabled"), hub.key(iid))
    assert hub.acknowledge(rej, now_ms=2_000) == "rejected"
    c = [c for c in hub.candidates(now_ms=2_500) if c.rule_id == "controller_plan_rejected"]
    assert len(c) == 1 and "detector faults" in c[0].summary and c[0].severity == 2


def test_status_reports_become_signal_status_records_and_a_wrong_plan_alerts(setup):
    spec, plan, hub = setup
    iid = spec.intersections[2].id
    ctl = EmulatedController(iid, hub.key(iid), detector_faults=2)
    hub.acknowledge(ctl.receive(fetch(hub, iid, 2_000), 2_000), now_ms=2_000)
    line = hub.report(ctl.status(now_ms=60_000))
    rec = msgspec.json.decode(line, type=Record)
    assert isinstance(rec, SignalStatus) and rec.plan_id == plan.plan_id and rec.detector_faults == 2
    assert hub.r.xlen(hub.status_stream) == 1
    with pytest.raises(ControllerError):
        st = ctl.status(now_ms=61_000)
        hub.report(msgspec.structs.replace(st, phase=st.phase + 1))   # changed after signing
    assert not [c for c in hub.candidates(now_ms=400_000) if c.rule_id == "controller_plan_mismatch"]
    ctl.running = None                                             # the controller fell back to free running
    hub.report(ctl.status(now_ms=400_000))
    mism = [c for c in hub.candidates(now_ms=400_000) if c.rule_id == "controller_plan_mismatch"]
    assert [c.labels["intersection"] for c in mism] == [iid]
