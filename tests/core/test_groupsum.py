"""The grouped Kahan-sum kernel equals its plain-Python reference and is what polars' grouped sum gives."""
from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from brain.kernels.groupsum import group_sums, group_sums_reference, multi_group_sums, multi_group_sums_reference

finite = st.floats(-1e12, 1e12, allow_nan=False)


@settings(max_examples=80, deadline=None)
@given(n=st.integers(0, 60), n_groups=st.integers(1, 6), data=st.data())
def test_kernel_equals_reference(n, n_groups, data):
    values = data.draw(hnp.arrays(np.float64, n, elements=st.one_of(finite, st.just(np.nan), st.just(np.inf), st.just(-np.inf))))
    ok = data.draw(hnp.arrays(np.bool_, n))
    group = data.draw(hnp.arrays(np.int64, n, elements=st.integers(-1, n_groups - 1)))
    got_sum, got_count = group_sums(values, ok, group, n_groups)
    want_sum, want_count = group_sums_reference(values, ok, group, n_groups)
    np.testing.assert_array_equal(got_count, want_count)
    np.testing.assert_array_equal(got_sum, want_sum)  # same operations in the same order: the same bits
    assert (np.signbit(got_sum) == np.signbit(want_sum)).all()


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 40), n_terms=st.integers(1, 3), n_member=st.integers(1, 3), n_groups=st.integers(1, 6), data=st.data())
def test_multi_kernel_equals_reference(n, n_terms, n_member, n_groups, data):
    values = data.draw(hnp.arrays(np.float64, (n_terms, n), elements=st.one_of(finite, st.just(np.nan), st.just(np.inf))))
    ok = data.draw(hnp.arrays(np.bool_, (n_terms, n)))
    groups = data.draw(hnp.arrays(np.int64, (n, n_member), elements=st.integers(-1, n_groups - 1)))
    got_sum, got_count = multi_group_sums(values, ok, groups, n_groups)
    want_sum, want_count = multi_group_sums_reference(values, ok, groups, n_groups)
    np.testing.assert_array_equal(got_count, want_count)
    np.testing.assert_array_equal(got_sum, want_sum)
    assert (np.signbit(got_sum) == np.signbit(want_sum)).all()


def test_multi_sums_are_single_sums_per_membership():
    # a row in a district group and in the city group: each group sums its rows in row order
    rng = np.random.default_rng(0)
    values = rng.standard_normal((2, 50)) * 1e3
    ok = rng.random((2, 50)) > 0.2
    district = rng.integers(-1, 3, 50)
    groups = np.stack([district, np.full(50, 3)], axis=1)
    total, count = multi_group_sums(values, ok, groups, 4)
    for j in range(2):
        rows = np.r_[np.flatnonzero(district >= 0), np.arange(50)]
        member = np.r_[district[district >= 0], np.full(50, 3)]
        want, n = group_sums(values[j, rows], ok[j, rows], member, 4)
        np.testing.assert_array_equal(total[:, j], want)
        np.testing.assert_array_equal(count[:, j], n)


@settings(max_examples=40, deadline=None)
@given(n_groups=st.integers(5, 40), data=st.data())
def test_sums_are_polars_grouped_sums(n_groups, data):
    # polars' hash group-by with a sum and a count per group, over many small groups (the shape of the
    # vital-sign area figures): the kernel must give the same bits, not just close ones.
    n = data.draw(st.integers(n_groups, 8 * n_groups))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    values = rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3, n)
    group = rng.integers(0, n_groups, n)
    ok = rng.random(n) > 0.1
    frame = pl.DataFrame({"g": group, "x": pl.Series(np.where(ok, values, np.nan), nan_to_null=True)})
    want = frame.group_by("g").agg(pl.col("x").sum().alias("s"), pl.col("x").count().alias("c")).sort("g")
    got_sum, got_count = group_sums(values, ok, group, n_groups)
    g = want["g"].to_numpy()
    np.testing.assert_array_equal(got_count[g], want["c"].to_numpy())
    np.testing.assert_array_equal(got_sum[g], want["s"].to_numpy())


def test_compensation_keeps_small_terms():
    # 1 + 1e-16 (x10) is 1.000000000000001 exactly summed; a plain running sum loses every small term
    values = np.array([1.0] + [1e-16] * 10)
    total, count = group_sums(values, np.ones(11, dtype=bool), np.zeros(11, dtype=np.int64), 1)
    assert count.tolist() == [11]
    assert total[0] == 1.000000000000001 and sum(values.tolist()) == 1.0


def test_skipped_rows_and_non_finite_sums():
    values = np.array([np.inf, 1.0, 2.0, np.nan, 4.0])
    total, count = group_sums(values, np.array([True, True, False, True, True]), np.array([0, 0, 1, 1, -1]), 3)
    assert total[0] == np.inf and np.isnan(total[1]) and total[2] == 0.0 and not np.signbit(total[2])
    assert count.tolist() == [2, 1, 0]


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_sums_are_polars_window_sums(data):
    # sum().over(key) on a frame in key blocks of 100..300 rows (a tick's segments): also Kahan in row
    # order, not polars' plain pairwise sum of a Series
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    sizes = rng.integers(100, 300, data.draw(st.integers(1, 6)))
    group = np.repeat(np.arange(len(sizes)), sizes)
    values = rng.uniform(0, 40, len(group)) * 10.0 ** rng.uniform(-2, 2, len(group))
    ok = rng.random(len(group)) > 0.15
    frame = pl.DataFrame({"g": group, "x": pl.Series(np.where(ok, values, np.nan), nan_to_null=True)})
    want = frame.select(pl.col("x").sum().over("g")).to_series().to_numpy()
    got, _ = group_sums(values, ok, group, len(sizes))
    np.testing.assert_array_equal(got[group], want)
