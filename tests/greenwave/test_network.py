"""Two corridors crossing at a shared signal: one cycle, one timing there, neither corridor worse off."""
from __future__ import annotations

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.greenwave.network import plan_crossing, shared_timing
from brain.greenwave.optimizer import optimize_corridor
from tests.greenwave.helpers import random_spec


def crossing(seed: int, na: int, nb: int, ja: int, jb: int, rot: int):
    """Corridor A and corridor B whose intersection ``jb`` is A's ``ja``: the same phases, B's ring
    starting (coordinated) at one of A's non-coordinated phases."""
    rng = np.random.default_rng(seed)
    a = random_spec(rng, na)
    b = random_spec(rng, nb)
    x = a.intersections[ja]
    r = 1 + rot % (len(x.phases) - 1)
    ph = x.phases[r:] + x.phases[:r]
    ph = [msgspec.structs.replace(p, coordinated=(k == 0)) for k, p in enumerate(ph)]
    inters = [msgspec.structs.replace(it, id=f"B{i}") for i, it in enumerate(b.intersections)]
    inters[jb] = msgspec.structs.replace(inters[jb], id=x.id, phases=ph)
    return a, msgspec.structs.replace(b, id="B", intersections=inters)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), na=st.integers(2, 6), nb=st.integers(2, 6), ja=st.integers(0, 5),
       jb=st.integers(0, 5), rot=st.integers(0, 5))
def test_shared_signal_runs_one_timing_and_offsets_are_only_shifted(seed, na, nb, ja, jb, rot):
    a, b = crossing(seed, na, nb, ja % na, jb % nb, rot)
    shared = a.intersections[ja % na].id
    pa, pb = plan_crossing(a, b, shared)
    C = pa.cycle_s
    assert pb.cycle_s == C
    ta, tb = shared_timing(pa, shared), shared_timing(pb, shared)
    assert ta.keys() == tb.keys()
    for name in ta:
        (sa, ga), (sb, gb) = ta[name], tb[name]
        assert ga == pytest.approx(gb, abs=1e-6)
        assert min(abs(sa - sb), C - abs(sa - sb)) < 1e-6  # same start on the shared clock
    # corridor A is planned as on its own at the common cycle; B's offsets differ from its own
    # plan (same greens) by one constant: its progression is untouched
    assert pa.offsets_s() == pytest.approx(optimize_corridor(a, cycle_s=C).offsets_s())
    greens_b = [np.array([p.green_s for p in it.phases]) for it in pb.intersections]
    own = optimize_corridor(b, cycle_s=C, greens_s=greens_b).offsets_s()
    d = (np.asarray(pb.offsets_s()) - np.asarray(own)) % C
    assert np.all(np.minimum(np.abs(d - d[0]), C - np.abs(d - d[0])) < 1e-6)


def test_refusals_are_worded():
    a, b = crossing(3, 4, 4, 1, 2, 0)
    shared = a.intersections[1].id
    with pytest.raises(ValueError, match="must be on both corridors"):
        plan_crossing(a, b, "nope")
    bad = msgspec.structs.replace(b.intersections[2], phases=[
        msgspec.structs.replace(p, name=f"other{k}") for k, p in enumerate(b.intersections[2].phases)])
    with pytest.raises(ValueError, match="same ring order"):
        plan_crossing(a, msgspec.structs.replace(b, intersections=b.intersections[:2] + [bad] + b.intersections[3:]), shared)
    with pytest.raises(ValueError, match="does not fit corridor"):
        plan_crossing(a, b, shared, cycle_s=400.0)
    twice = msgspec.structs.replace(b.intersections[0], id=a.intersections[0].id)
    with pytest.raises(ValueError, match="more than one signal"):
        plan_crossing(a, msgspec.structs.replace(b, intersections=[twice] + b.intersections[1:]), shared)
