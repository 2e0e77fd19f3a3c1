"""Plan messages: MACs that catch any change, keys that open only their own controller, and
the controller's own checks and phase clock."""
from __future__ import annotations

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.greenwave.optimizer import optimize_corridor
from streams.controllers.protocol import (
    AckMessage,
    check_message,
    controller_key,
    phase_at,
    plan_messages,
    sign,
    verify,
)
from tests.greenwave.helpers import random_spec

MASTER = b"test-master-secret-0123456789"


@pytest.fixture(scope="module")
def messages():
    spec = random_spec(np.random.default_rng(5), 4)
    return plan_messages(optimize_corridor(spec, valid_from_ms=10_000), issued_ms=0, ack_within_ms=30_000)


@settings(max_examples=200, deadline=None)
@given(field=st.sampled_from(["plan_id", "pattern", "cycle_s", "offset_s", "coord_phase", "valid_from_ms",
                              "ack_by_ms", "seq", "splits"]), k=st.integers(0, 3), bump=st.floats(0.001, 50))
def test_any_change_breaks_the_mac(messages, field, k, bump):
    msg = messages[k]
    key = controller_key(MASTER, msg.intersection_id)
    signed = sign(msg, key)
    assert verify(signed, key)
    old = getattr(signed, field)
    if field == "plan_id":
        new = old + "x"
    elif field == "splits":
        new = [msgspec.structs.replace(old[0], green_s=old[0].green_s + bump)] + old[1:]
    elif isinstance(old, int):
        new = old + max(1, int(bump))
    else:
        new = old + bump
    assert not verify(msgspec.structs.replace(signed, **{field: new}), key)


def test_keys_open_only_their_own_controller(messages):
    keys = {m.intersection_id: controller_key(MASTER, m.intersection_id) for m in messages}
    assert len(set(keys.values())) == len(keys)
    for m in messages:
        signed = sign(m, keys[m.intersection_id])
        assert [verify(signed, k) for k in keys.values()].count(True) == 1
    assert not verify(sign(messages[0], controller_key(b"another-master-secret-000", messages[0].intersection_id)),
                      keys[messages[0].intersection_id])
    with pytest.raises(ValueError, match="at least 16 bytes"):
        controller_key(b"short", "J1")
    ack = AckMessage(intersection_id="J1", plan_id="p", seq=1, status="accepted", ack_ms=0)
    assert not verify(ack, keys[messages[0].intersection_id])        # unsigned: refused


def test_messages_pass_the_controllers_checks_and_broken_ones_do_not(messages):
    assert all(check_message(m) == [] for m in messages)
    bad = msgspec.structs.replace(messages[0], splits=[msgspec.structs.replace(messages[0].splits[0], yellow_s=2.0)]
                                  + messages[0].splits[1:])
    assert any("yellow" in p for p in check_message(bad))
    assert check_message(msgspec.structs.replace(messages[0], offset_s=messages[0].cycle_s + 1))


@settings(max_examples=200, deadline=None)
@given(k=st.integers(0, 3), t=st.integers(0, 10**12))
def test_phase_clock_walks_the_split_table(messages, k, t):
    m = messages[k]
    ph, into = phase_at(m, t)
    split = {s.phase: s.split_s for s in m.splits}[ph]
    assert 0 <= into < split + 1e-6
    if into < split - 1e-3:                       # the same phase a moment later, one cycle later too
        assert phase_at(m, t + int(m.cycle_s * 1000))[0] == ph
    ph0, t0 = phase_at(m, int(m.offset_s * 1000) + 1)   # offset: the coordinated phase begins
    assert ph0 == m.coord_phase and t0 < 0.01
