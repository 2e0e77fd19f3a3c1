"""Anomaly checkpoints as a delta against a base file: restoring one gives back the state bit for bit,
and an operator checkpointed and restored at random moments scores exactly as one never interrupted."""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from brain.anomaly.delta import apply_delta, diff_arrays
from brain.city import demo_city_path, load_city
from brain.pipeline import CityPipeline
from streams.anomaly_operator import AnomalyOperator
from streams.anomaly_store import BaseStore
from streams.sim import Simulator

# Floats with NaN, infinities and signed zeros: the comparison is by bits, never by value.
_floats = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.sampled_from([0.0, -0.0, float("nan")])


@st.composite
def _pair(draw):
    """A base array and a later one: some elements changed, maybe rows added, maybe another shape."""
    cols = draw(st.integers(1, 4))
    dtype = draw(st.sampled_from([np.float64, np.int64, np.bool_]))
    elements = _floats if dtype == np.float64 else st.booleans() if dtype == np.bool_ else st.integers(-(2**63), 2**63 - 1)
    base = draw(hnp.arrays(dtype, (draw(st.integers(0, 6)), cols), elements=elements))
    now = base.copy()
    for _ in range(draw(st.integers(0, 5))):
        if now.size:
            now.reshape(-1)[draw(st.integers(0, now.size - 1))] = draw(elements)
    kind = draw(st.sampled_from(["same", "rows", "shape"]))
    if kind == "rows":
        now = np.concatenate([now, draw(hnp.arrays(dtype, (draw(st.integers(1, 3)), cols), elements=elements))])
    elif kind == "shape":
        now = draw(hnp.arrays(dtype, (draw(st.integers(0, 4)), cols + 1), elements=elements))
    return base, now


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["S", "SEA", "PD", "PD_ROWS"]), _pair(), min_size=1), st.sampled_from([0.0, 0.5, 2.0]))
def test_a_delta_rebuilds_the_state_bit_for_bit(pairs, whole_share):
    base = {name: b for name, (b, _) in pairs.items()}
    now = {name: n for name, (_, n) in pairs.items()}
    back = apply_delta(base, diff_arrays(base, now, whole_share=whole_share))
    assert set(back) == set(now)
    for name, a in now.items():
        assert back[name].dtype == a.dtype and back[name].shape == a.shape
        assert back[name].tobytes() == a.tobytes(), name  # bits: NaN payloads and -0.0 included
    assert all(np.array_equal(base[n], pairs[n][0], equal_nan=True) for n in base)  # the base is left alone


def _recorded_batches(hours: float, seed: int) -> list:
    """The tick batches of a simulated stretch of the demo city (the operator's input)."""
    city = load_city(demo_city_path())
    batches = []

    class Recorder:
        def __call__(self, batch):
            batches.append(batch)
            return {}

    pipe = CityPipeline(city, window_operators=[Recorder()])
    sim = Simulator(city, seed=seed)
    for b in sim.batches(sim.start_ms + int(hours * 3_600_000), batch_s=1800):
        pipe.ingest_frames(b.frames)
    return batches


@pytest.fixture(scope="module")
def batches():
    return _recorded_batches(10.0, seed=5)


@pytest.mark.parametrize("seed, share", [(1, 0.05), (2, 0.5)])
def test_checkpointed_and_restored_at_random_moments_scores_as_uninterrupted(batches, tmp_path, seed, share):
    city = load_city(demo_city_path())
    rng = random.Random(seed)
    plain = AnomalyOperator(city=city)
    store = BaseStore(tmp_path / "anomaly")
    # A small rebase share makes new bases now and then (the delta outgrows it as seasonal bins fill).
    op = AnomalyOperator(city=city).keep_bases_in(store, rebase_share=share)
    restores = 0
    previous = None
    for k, batch in enumerate(batches):
        want = plain(batch)["anomaly"]
        got = op(batch)["anomaly"]
        assert got.equals(want), f"batch {k}"
        blob = op.snapshot()  # every batch, as a checkpoint cadence would
        if rng.random() < 0.25:
            op = AnomalyOperator(city=city).keep_bases_in(BaseStore(tmp_path / "anomaly"), rebase_share=share)
            op.restore(blob)
            restores += 1
            assert op.snapshot() == blob  # nothing scored since: the same delta again, no new base
        previous = blob
    assert restores >= 3 and previous is not None
    names_a, arrays_a = plain.detector.state()
    names_b, arrays_b = op.detector.state()
    assert names_a == names_b and all(arrays_a[n].tobytes() == arrays_b[n].tobytes() for n in arrays_a)
    bases = sorted((tmp_path / "anomaly").glob("base-*.bin"))
    assert len(bases) <= 3  # older bases removed
    if share < 0.1:  # restored from deltas against several bases, not only the first
        assert int(bases[-1].stem.split("-")[1]) >= 3


def test_a_delta_is_much_smaller_than_the_state_and_repeats_when_nothing_changed(batches, tmp_path):
    op = AnomalyOperator(city=load_city(demo_city_path())).keep_bases_in(BaseStore(tmp_path))
    whole = AnomalyOperator(city=load_city(demo_city_path()))
    for batch in batches[: len(batches) // 2]:
        op(batch)
        whole(batch)
    first = op.snapshot()  # the first: writes the base, an empty delta
    assert op.snapshot() is first
    op(batches[len(batches) // 2])
    whole(batches[len(batches) // 2])
    delta, full = op.snapshot(), whole.snapshot()
    assert len(delta) < len(full) / 3, (len(delta), len(full))
    assert len(list(tmp_path.glob("base-*.bin"))) == 1


def test_missing_or_damaged_base_and_no_store_are_clear_errors(batches, tmp_path):
    city = load_city(demo_city_path())
    op = AnomalyOperator(city=city).keep_bases_in(BaseStore(tmp_path))
    for batch in batches[:6]:
        op(batch)
    blob = op.snapshot()
    with pytest.raises(ValueError, match="no base directory"):
        AnomalyOperator(city=city).restore(blob)
    (base,) = tmp_path.glob("base-*.bin")
    data = bytearray(base.read_bytes())
    data[-1] ^= 0xFF
    base.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged"):
        AnomalyOperator(city=city).keep_bases_in(BaseStore(tmp_path)).restore(blob)
    base.unlink()
    with pytest.raises(ValueError, match="cannot be read"):
        AnomalyOperator(city=city).keep_bases_in(BaseStore(tmp_path)).restore(blob)


def test_a_whole_snapshot_still_restores_into_an_operator_with_a_store(batches, tmp_path):
    city = load_city(demo_city_path())
    whole = AnomalyOperator(city=city)
    for batch in batches[:6]:
        whole(batch)
    op = AnomalyOperator(city=city).keep_bases_in(BaseStore(tmp_path))
    op.restore(whole.snapshot())
    nxt = batches[6]
    assert op(nxt)["anomaly"].equals(whole(nxt)["anomaly"])
    assert isinstance(op.snapshot(), bytes) and len(list(tmp_path.glob("base-*.bin"))) == 1
