"""Grid-case metrics on a hand-made case list."""
from __future__ import annotations

import polars as pl
import pytest

from brain.vitals.grid import case_metrics

H = 3_600_000
T = 12 * H

# case, category, cell, reported, closed, deadline                 at t = 12 h (lookback 24 h: since -12 h)
CASES = [
    ("a", "road", "C1", int(11.5 * H), None, 20 * H),  # new in the last hour, open, not yet due
    ("b", "road", "C1", 2 * H, None, 10 * H),  # open, overdue since 10 h
    ("c", "litter", "C1", 1 * H, 3 * H, 4 * H),  # closed on time after 2 h
    ("d", "litter", "C2", 4 * H, 11 * H, 8 * H),  # closed late after 7 h
    ("e", "litter", "C2", 13 * H, None, 20 * H),  # reported after t: does not exist yet
    ("f", "road", "C2", 5 * H, 13 * H, 6 * H),  # closed only after t: open and overdue at t
    ("g", "road", "C2", -30 * H, -20 * H, -25 * H),  # closed before the lookback: not counted
]


@pytest.fixture()
def cases():
    return pl.DataFrame(CASES, schema={"case_id": pl.String, "category": pl.String, "cell_id": pl.String,
                                       "reported_ms": pl.Int64, "closed_ms": pl.Int64, "deadline_ms": pl.Int64}, orient="row")


def test_city(cases):
    m = case_metrics(cases, T).row(0, named=True)
    # new: a; open: a, b, f; overdue: b, f; closed recently: c (on time, 2 h), d (late, 7 h)
    assert m == {"new_last_hour": 1, "open_backlog": 3, "overdue": 2, "closed_recent": 2, "closed_on_time": 1,
                 "on_time_closure_rate": 0.5, "mean_time_to_close_h": 4.5}


def test_by_category(cases):
    rows = case_metrics(cases, T, by=["category"]).rows()
    assert rows == [
        ("litter", 0, 0, 0, 2, 1, 0.5, 4.5),
        ("road", 1, 3, 2, 0, 0, None, None),
    ]


def test_by_cell(cases):
    rows = case_metrics(cases, T, by=["cell_id"]).rows()
    assert rows == [
        ("C1", 1, 2, 1, 1, 1, 1.0, 2.0),  # a, b open; b overdue; c closed on time in 2 h
        ("C2", 0, 1, 1, 1, 0, 0.0, 7.0),  # f open and overdue; d closed late in 7 h
    ]


def test_replay_at_an_earlier_time(cases):
    # At 3.5 h: b is open and not yet due; d, f not reported yet; c (closed at 3 h) and g (closed at
    # -20 h, inside the 24 h lookback that now starts at -20.5 h) closed recently; nothing new since 2.5 h.
    m = case_metrics(cases, int(3.5 * H)).row(0, named=True)
    assert (m["open_backlog"], m["overdue"], m["closed_recent"], m["new_last_hour"]) == (1, 0, 2, 0)


def test_short_lookback_drops_old_closures(cases):
    # Lookback 2 h: only d (closed at 11 h) counts.
    m = case_metrics(cases, T, lookback_s=2 * 3600).row(0, named=True)
    assert (m["closed_recent"], m["on_time_closure_rate"], m["mean_time_to_close_h"]) == (1, 0.0, 7.0)


def test_missing_columns_and_bad_lookback(cases):
    with pytest.raises(ValueError, match="lacks column"):
        case_metrics(cases.drop("deadline_ms"), T)
    with pytest.raises(ValueError, match="lookback_s must be > 0"):
        case_metrics(cases, T, lookback_s=0)


def _updates(rows):
    return pl.DataFrame(rows, schema={"case_id": pl.String, "status": pl.String, "ts_ms": pl.Int64, "category": pl.String,
                                      "cell_id": pl.String, "unit": pl.String, "deadline_ms": pl.Int64}, orient="row")


def test_case_state_from_out_of_order_updates():
    from brain.vitals.grid import case_state

    up = _updates([
        ("b", "dispatched", 3 * H, "road", "C1", "u1", 10 * H),
        ("a", "reported", int(11.5 * H), "road", "C1", "u1", 20 * H),
        ("b", "reported", 2 * H, "road", "C1", "u1", 10 * H),
        ("c", "closed", 3 * H, "litter", "C1", "u2", 4 * H),
        ("c", "reported", 1 * H, "litter", "C1", "u2", 4 * H),
        ("c", "dispatched", 1 * H, "litter", "C1", "u2", 4 * H),  # same instant as the report: ordered after it
    ])
    state = case_state(up)
    assert state.select("case_id", "reported_ms", "dispatched_ms", "closed_ms", "status").rows() == [
        ("a", int(11.5 * H), None, None, "reported"),
        ("b", 2 * H, 3 * H, None, "dispatched"),
        ("c", 1 * H, 1 * H, 3 * H, "closed"),
    ]
    # Fed to the metrics at 12 h: a new and open, b open and overdue (due 10 h), c closed on time in 2 h.
    m = case_metrics(state, T).row(0, named=True)
    assert (m["new_last_hour"], m["open_backlog"], m["overdue"], m["on_time_closure_rate"], m["mean_time_to_close_h"]) == (1, 2, 1, 1.0, 2.0)


def test_case_state_rejects_unknown_status():
    from brain.vitals.grid import case_state

    with pytest.raises(ValueError, match="unknown case status"):
        case_state(_updates([("a", "lost", 0, "road", "C1", "u", 1)]))
