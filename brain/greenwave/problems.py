"""Controller problems as a table the alert rules read (``controller_problems``, rules/controllers.yaml).

The controllers sink (:class:`streams.controllers.hub.ControllerHub`) knows three problems per
controller: a plan not acknowledged by its deadline, a plan rejected, and a controller running
another plan than the one it acknowledged. :func:`problems_frame` turns its alert candidates into
one row per (intersection, problem) with a 0/1 column per problem, the place of the intersection
(so the alert carries district, cell and a position for the map) and the words of the problem;
the alert pipeline then groups, routes, escalates and resolves them like any other alert (a
problem that goes away stops producing its row, which resolves the alert).

Example:
    >>> from brain.alerts.model import Candidate
    >>> from brain.city import demo_city_path, load_city
    >>> city = load_city(demo_city_path())
    >>> c = Candidate(rule_id="controller_plan_unacknowledged", kind="signal", severity=3,
    ...               labels={"intersection": "JF01", "plan_id": "jiefang-7"}, value=42.0, ts_ms=0,
    ...               summary="controller JF01 has not acknowledged plan jiefang-7 (42 s past its deadline)")
    >>> f = problems_frame([c], city, window_end_ms=600_000)
    >>> f.select("intersection", "corridor", "problem", "unacknowledged", "rejected", "late_s").row(0)
    ('JF01', 'jiefang', 'unacknowledged', 1.0, 0.0, 42.0)
    >>> problems_frame([], city, 0).height
    0
"""
from __future__ import annotations

import polars as pl

from brain.city.model import City

#: rule id of the hub's candidate -> the problem's column
PROBLEMS = {"controller_plan_unacknowledged": "unacknowledged", "controller_plan_rejected": "rejected",
            "controller_plan_mismatch": "mismatch"}

CONTROLLER_PROBLEMS_SCHEMA: dict[str, pl.DataType] = {
    "intersection": pl.Utf8, "corridor": pl.Utf8, "name": pl.Utf8, "district": pl.Utf8, "cell_id": pl.Utf8,
    "lon": pl.Float64, "lat": pl.Float64, "plan_id": pl.Utf8, "problem": pl.Utf8,
    "unacknowledged": pl.Float64, "rejected": pl.Float64, "mismatch": pl.Float64,
    "late_s": pl.Float64, "detail": pl.Utf8, "window_end_ms": pl.Int64,
}


def problems_frame(candidates, city: City, window_end_ms: int) -> pl.DataFrame:
    """One row per controller problem (see the module docstring); unknown rule ids are skipped."""
    where = {it.id: it for it in city.intersections}
    corridor = {iid: c.id for c in city.corridors for iid in c.intersections}
    rows = []
    for c in candidates:
        problem = PROBLEMS.get(c.rule_id)
        if problem is None:
            continue
        iid = c.labels.get("intersection", "")
        it = where.get(iid)
        rows.append({"intersection": iid, "corridor": corridor.get(iid, ""), "name": it.name if it else iid,
                     "district": it.district if it else None, "cell_id": it.cell if it else None,
                     "lon": float(it.lon) if it else None, "lat": float(it.lat) if it else None,
                     "plan_id": c.labels.get("plan_id", ""), "problem": problem,
                     **{p: float(p == problem) for p in PROBLEMS.values()},
                     "late_s": float(c.value) if problem == "unacknowledged" else 0.0,
                     "detail": c.summary, "window_end_ms": int(window_end_ms)})
    return pl.DataFrame(rows, schema=CONTROLLER_PROBLEMS_SCHEMA)
