"""compute_vitals_batch over K ticks == compute_vitals tick by tick, on a simulated demo-city morning.

The per-tick side is the plain one-window formulation (``compute_vitals_reference``, one polars
step after another); ``compute_vitals`` itself now runs the batch with K = 1, checked against it too.
"""
from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from brain.pipeline import CityPipeline
from brain.vitals import compute_vitals, compute_vitals_batch, split_ticks
from brain.vitals.batch import TICK_ONLY_TABLES, WINDOW_TABLES
from brain.vitals.reference import compute_vitals_reference

STATE_TABLES = ("cases", "incidents", "outages")
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def day(city):
    """Per-tick inputs the real pipeline passes to its vitals function over 3 simulated hours (08:00-11:00 local)."""
    from streams.sim import Simulator

    ticks: list[tuple[int, dict[str, pl.DataFrame]]] = []

    def capture(inputs, city, window_end_ms):
        ticks.append((window_end_ms, dict(inputs)))
        return {}

    start = Simulator(city, seed=7).start_ms + 8 * HOUR_MS
    sim = Simulator(city, seed=11, start_ms=start)
    pipe = CityPipeline(city, vitals_fn=capture)
    for batch in sim.batches(start + 3 * HOUR_MS, batch_s=600):
        pipe.ingest_frames(batch.frames)
    assert len(ticks) > 20
    # The state after the last tick, evaluated as of every tick (what the batch receives).
    state = {k: ticks[-1][1][k] for k in STATE_TABLES}
    assert state["cases"].height > 10 and state["incidents"].height > 3
    return ticks, state


@pytest.fixture(scope="module")
def reference(day, city):
    ticks, state = day
    return {t: compute_vitals_reference({**inp_window(inp), **state}, city, t) for t, inp in ticks}


def inp_window(inputs: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    return {k: v for k, v in inputs.items() if k not in STATE_TABLES}


def stack(ticks, state) -> dict[str, pl.DataFrame]:
    frames = {}
    for name in (*WINDOW_TABLES, "sensor_last_seen"):
        parts = [inp[name].with_columns(pl.lit(t, dtype=pl.Int64).alias("tick_end_ms")) for t, inp in ticks if name in inp]
        frames[name] = pl.concat(parts, how="vertical_relaxed")
    return {**frames, **state}


def assert_same(got: dict[str, pl.DataFrame], want: dict[str, pl.DataFrame], where: str) -> None:
    assert set(got) == set(want), where
    for name in want:
        try:
            assert_frame_equal(got[name], want[name], check_exact=False, rel_tol=1e-9, abs_tol=0.0)
        except AssertionError as exc:
            raise AssertionError(f"{where}, table {name}: {exc}") from None


def test_batch_equals_tick_by_tick_on_random_subsets(day, reference, city):
    ticks, state = day
    rng = random.Random(2026)
    for draw in range(6):
        k = rng.randint(2, len(ticks))
        chosen = sorted(rng.sample(range(len(ticks)), k))
        sub = [ticks[i] for i in chosen]
        ends = [t for t, _ in sub]
        out = compute_vitals_batch(stack(sub, state), city, ends)
        assert all(frame["tick_end_ms"].is_sorted() for frame in out.values())
        for name in TICK_ONLY_TABLES:  # the stacked tables all say their tick
            assert out[name]["window_end_ms"].equals(out[name]["tick_end_ms"], check_names=False)
        for t, per_tick in zip(ends, split_ticks(out, ends)):
            assert_same(per_tick, reference[t], f"draw {draw} (K={k}), tick {t}")


def test_one_tick_equals_compute_vitals(day, reference, city):
    ticks, state = day
    for t, inp in (ticks[0], ticks[len(ticks) // 2], ticks[-1]):
        # Unstacked (no tick_end_ms) and stacked inputs give the same.
        (plain,) = split_ticks(compute_vitals_batch({**inp_window(inp), **state}, city, [t]), [t])
        assert_same(plain, reference[t], f"K=1 unstacked, tick {t}")
        (tagged,) = split_ticks(compute_vitals_batch(stack([(t, inp)], state), city, [t]), [t])
        assert_same(tagged, reference[t], f"K=1 stacked, tick {t}")
        assert_same(compute_vitals({**inp_window(inp), **state}, city, t), reference[t], f"compute_vitals, tick {t}")


def test_ticks_without_rows_get_their_area_rows(day, city):
    ticks, state = day
    sub = ticks[:3]
    quiet = [sub[-1][0] + 5 * 60_000 * i for i in (1, 2)]  # two later ticks with no window rows at all
    ends = [t for t, _ in sub] + quiet
    out = split_ticks(compute_vitals_batch(stack(sub, state), city, ends), ends)
    n_districts = len(city.districts)
    for t, per_tick in zip(quiet, out[3:]):
        empty = {name: pl.DataFrame(schema=sub[0][1][name].schema) for name in (*WINDOW_TABLES, "sensor_last_seen")}
        assert_same(per_tick, compute_vitals_reference({**empty, **state}, city, t), f"quiet tick {t}")
        assert per_tick["district"].height == n_districts and per_tick["city"].height == 1
        assert per_tick["segment_traffic"].height == 0


def test_state_is_evaluated_as_of_each_tick(city):
    """An outage and a case that start between ticks and end later: counted exactly while they run."""
    cell = city.cells[0]
    m5 = 300_000
    ends = [m5 * i for i in range(1, 7)]
    outages = pl.DataFrame({"outage_id": ["o1", "o2"], "utility": ["water", "power"], "cell_id": [cell.id, cell.id],
                            "customers": [120, 30], "started_ms": [m5 + 1, 2 * m5], "ended_ms": [4 * m5, None]})
    cases = pl.DataFrame({"case_id": ["c1"], "category": ["road"], "cell_id": [cell.id], "unit": ["u"],
                          "reported_ms": [2 * m5 - 5], "dispatched_ms": [None], "closed_ms": [5 * m5 + 7],
                          "deadline_ms": [3 * m5], "status": ["closed"]})
    frames = {"outages": outages, "cases": cases}
    out = compute_vitals_batch(frames, city, ends)
    for t, per_tick in zip(ends, split_ticks(out, ends)):
        assert_same(per_tick, compute_vitals_reference(frames, city, t), f"tick {t}")
    dist = out["district"].filter(pl.col("district") == cell.district)
    assert dist["outage_customers"].to_list() == [0, 150, 150, 30, 30, 30]
    assert dist["cases_open"].to_list() == [0, 1, 1, 1, 1, 0]
    assert dist["cases_overdue"].to_list() == [0, 0, 0, 1, 1, 0]
    # The case does not exist before it is reported: no grid row for its cell at the first tick.
    assert out["grid_cell"]["tick_end_ms"].to_list() == ends[1:]


@pytest.mark.parametrize(("ends", "message"), [
    ([600_000, 300_000], "ascending"),
    ([300_000, 300_000], "ascending"),
    ([1.5], "integer"),
    ("abc", "integer"),
])
def test_bad_ticks_are_refused(city, ends, message):
    with pytest.raises(ValueError, match=message):
        compute_vitals_batch({}, city, ends)


def test_stacked_tables_need_tick_end_ms(city):
    noise = pl.DataFrame({"sensor_id": ["x"], "window_start_ms": [0], "window_end_ms": [300_000], "laeq_db": [50.0]})
    with pytest.raises(ValueError, match="tick_end_ms"):
        compute_vitals_batch({"noise": noise}, city, [300_000, 600_000])
    with pytest.raises(ValueError, match="unknown window frame"):
        compute_vitals_batch({"nois": noise}, city, [300_000])


def perturbed(inputs: dict[str, pl.DataFrame], rng: np.random.Generator) -> dict[str, pl.DataFrame]:
    """The tick's window tables with rows dropped, values nulled and zeros (no vehicle, zero probe time)."""
    out = {}
    for name, frame in inp_window(inputs).items():
        frame = frame.filter(pl.Series(rng.random(frame.height) > 0.3))
        cols = []
        for col, dtype in frame.schema.items():
            if dtype == pl.Float64:
                r = pl.Series(rng.random(frame.height))
                zero = pl.lit(0.0) if col in ("volume_veh", "travel_time_s", "speed_kmh") else pl.col(col)
                cols.append(pl.when(r < 0.1).then(None).when(r < 0.2).then(zero).otherwise(pl.col(col)).alias(col))
        out[name] = frame.with_columns(cols) if cols else frame
    return out


def test_batch_equals_tick_by_tick_on_damaged_inputs(day, city):
    """Missing rows, nulls and zeros (no vehicles, zero probe times, unmeasured pollutants) per tick."""
    ticks, state = day
    rng = np.random.default_rng(5)
    chosen = sorted(rng.choice(len(ticks), size=8, replace=False).tolist())
    sub = [(ticks[i][0], perturbed(ticks[i][1], rng)) for i in chosen]
    ends = [t for t, _ in sub]
    out = split_ticks(compute_vitals_batch(stack(sub, state), city, ends), ends)
    for (t, inp), per_tick in zip(sub, out):
        assert_same(per_tick, compute_vitals_reference({**inp, **state}, city, t), f"damaged tick {t}")
