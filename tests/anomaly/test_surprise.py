"""brain.kernels.surprise: each kernel equals its plain twin, and the score semantics hold
(strictly ordered, never 1.0 for a finite surprise, calibrated below, one page per episode)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.anomaly import BatchDetector
from brain.kernels import surprise as sp

SETTINGS = settings(max_examples=200, deadline=None)
_s = st.floats(0.0, 1e6, allow_nan=False)
_q = st.floats(0.5, 1e4, allow_nan=False)


@SETTINGS
@given(_s)
def test_score_of_equals_reference_and_stays_below_one(s):
    assert sp.score_of(s) == sp.score_of_ref(s)
    assert 0.0 <= sp.score_of(s) < 1.0


@SETTINGS
@given(st.floats(-1e4, 1e4, allow_nan=False))
def test_gauss_surprise_equals_reference_and_is_the_gaussian_tail(z):
    assert sp.gauss_surprise(z) == sp.gauss_surprise_ref(z)
    if abs(z) < 30:
        assert math.isclose(sp.gauss_surprise(z), -math.log(math.erfc(abs(z) / math.sqrt(2))), rel_tol=1e-12, abs_tol=1e-15)


def test_gauss_surprise_is_continuous_where_the_asymptotic_form_takes_over():
    x = sp.GAUSS_ASYMPTOTIC_X * math.sqrt(2.0)
    below, above = sp.gauss_surprise(np.nextafter(x, 0.0)), sp.gauss_surprise(x)
    assert abs(above - below) < 1e-6 * above


@SETTINGS
@given(_s, _s)
def test_score_is_strictly_increasing_in_the_surprise(a, b):
    lo, hi = min(a, b), max(a, b)
    assert sp.score_of(lo) <= sp.score_of(hi)
    # strictly, wherever float64 can tell the two apart (surprises up to 1e4 nats, 10 % apart)
    if hi >= 1.1 * lo + 0.01 and hi > math.log(sp.N_COMPONENTS) + 0.01 and hi <= 1e4:
        assert sp.score_of(lo) < sp.score_of(hi)
    assert sp.gauss_surprise(lo) <= sp.gauss_surprise(hi)


@SETTINGS
@given(_s, _q, _q)
def test_calibrate_equals_reference_never_inflates_and_keeps_order(s, q, qlo):
    c = sp.calibrate(s, q, qlo)
    assert c == sp.calibrate_ref(s, q, qlo)
    assert sp.tail_index(q, qlo) == sp.tail_index_ref(q, qlo)
    assert c <= s + 1e-12
    assert sp.calibrate(s * 1.5 + 1.0, q, qlo) >= c  # monotone: a threshold still ranks


@SETTINGS
@given(_s, st.floats(0.0, 1e3), st.one_of(st.floats(0.0, 10.0), st.just(sp.S_ALARM * sp.EPI_MARGIN_HALVING)),
       st.sampled_from([sp.EPI_HUGE, math.inf]))
def test_onset_step_equals_reference(best, H, margin, huge):
    assert sp.onset_step(best, H, margin, huge) == sp.onset_step_ref(best, H, margin, huge)


@SETTINGS
@given(st.floats(0.0, 1e6))
def test_young_factor_equals_reference(n):
    assert sp.young_factor(n) == sp.young_factor_ref(n)


def test_an_episode_pages_once_then_again_only_when_it_grows():
    H = margin = 0.0
    reported = []
    for best in [2.0, 20.0, 21.0, 20.0, 19.0, 22.0, 40.0, 41.0, 3.0]:
        rep, H, margin = sp.onset_step(best, H, margin)
        reported.append(rep >= sp.S_ALARM)
    # onset at 20; 21, 20, 19, 22 are the same episode; 40 is materially more (paged); then quiet
    assert reported == [False, True, False, False, False, False, True, False, False]


def test_a_level_shift_pages_once_and_is_adopted():
    rng = np.random.default_rng(1)
    x = 10 + rng.normal(0, 1, 4000)
    x[2000:] += 8.0
    ts = np.arange(4000, dtype=np.int64) * 60_000
    res = BatchDetector(1).explain_learn_many(np.zeros(4000, dtype=np.int64), ts, x)
    flagged = np.flatnonzero(res["score"] >= 0.999)
    assert flagged.size and 2000 <= flagged[0] < 2010
    assert (flagged >= 2000).sum() <= 3  # one episode, not a run of pages
    assert res["ongoing"][2000:2005].max() >= 0.999  # while it holds, 'ongoing' says so


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("gap", [2, 3, 5, 10])
def test_a_second_anomaly_right_after_a_huge_one_is_still_paged(seed, gap):
    """A spike of 10^3 or 10^6 sigmas, then a level shift of 10 sigmas ``gap`` points later: the shift
    is paged at its first point, as it is without the spike (the spike's episode does not mask it)."""
    first_flag = []
    for spike in (0.0, 1e3, 1e6):
        rng = np.random.default_rng(seed)
        x = 50 + rng.normal(0, 1, 1000)
        x[600] += spike
        x[600 + gap:] += 10.0
        ts = np.arange(1000, dtype=np.int64) * 60_000
        scores = BatchDetector(1).score_learn_many(np.zeros(1000, dtype=np.int64), ts, x)
        if spike:
            assert scores[600] >= 0.999
        flagged = np.flatnonzero(scores[600 + gap:] >= 0.999)
        first_flag.append(int(flagged[0]) if flagged.size else None)
    assert first_flag == [0, 0, 0]


def test_a_huge_spike_pages_once_and_its_episode_ends_at_the_next_quiet_point():
    H = margin = 0.0
    reported = []
    for best in [2.0, 400.0, 1.0, 12.0, 11.0, 1.0]:
        rep, H, margin = sp.onset_step(best, H, margin)
        reported.append(rep >= sp.S_ALARM)
    assert reported == [False, True, False, True, False, False]
    # a moderate alarm followed by a quiet point keeps its episode: a glitch twice in a row pages once
    H = margin = 0.0
    assert [sp.onset_step(b, H, margin)[0] >= sp.S_ALARM for b in [12.0]] == [True]
    _, H, margin = sp.onset_step(12.0, 0.0, 0.0)
    _, H, margin = sp.onset_step(1.0, H, margin)
    assert sp.onset_step(12.0, H, margin)[0] < sp.S_ALARM


def test_heavy_tailed_noise_stays_calibrated_from_the_first_point():
    """Student-t (3 d.o.f.) and Pareto bursts: at 0.999, at most ~0.2 % of clean points flag."""
    rng = np.random.default_rng(7)
    n = 20_000
    ts = np.arange(n, dtype=np.int64) * 60_000
    for x in (100 + 5 * rng.standard_t(3, n), 50 * np.exp(rng.normal(0, 0.3, n)) + np.where(rng.random(n) < 0.01, 100 * rng.pareto(2.0, n), 0)):
        scores = BatchDetector(1).score_learn_many(np.zeros(n, dtype=np.int64), ts, x)
        assert np.mean(scores >= 0.999) <= 0.003
        assert np.mean(scores[:1000] >= 0.999) <= 0.005  # no warm-up storm
