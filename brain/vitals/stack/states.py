"""State tables as of each tick for :mod:`brain.vitals.batch`: grid cases, outages and incidents,
evaluated from their timestamps at every tick end of a batch.

Example: dense codes of a string column in sorted order, nulls first:
    >>> import polars as pl
    >>> codes, distinct = _codes(pl.Series(["b", None, "a", "b"]))
    >>> codes.tolist(), distinct.to_list()
    ([2, 0, 1, 2], [None, 'a', 'b'])
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from brain import series
from brain.kernels import cases as case_kernel
from brain.kernels.cases import case_counts
from brain.kernels.groupsum import group_sums
from brain.vitals import emergency, grid
from brain.vitals.config import VitalsConfig
from brain.vitals.inputs import CityRefs, nearest_cell
from brain.vitals.stack.keys import HOUR_MS, S, T, _Index, _conformed, _frame, _i64, _ints, _nulled


def _cell_district(ix: _Index, cell: np.ndarray) -> pl.Series:
    """The district of cell positions (-1: not a cell of the city -> null)."""
    return series.take(ix.cell_district_series, np.where(cell < 0, len(ix.cell_district) - 1, cell))


class _IncidentState:
    """Incident rows per tick, as numpy, in (incident, tick) order: those reported by the tick and still
    active at it or reported within the lookback, each placed in its segment's district, else in the
    district of the nearest grid cell centre; with the masks and delays of
    :func:`brain.vitals.emergency.incident_metrics` as of each row's tick."""

    def __init__(self, frames, ix: _Index, refs: CityRefs, ticks: np.ndarray, cfg: VitalsConfig) -> None:
        inc = _conformed(frames, "incidents")
        seg_district = ix.segment_district[_lookup(inc["segment_id"], ix.segment_position)]
        # The nearest cell is a property of the incident, not of the tick: computed once.
        near = nearest_cell(inc["lon"].to_numpy(), inc["lat"].to_numpy(), refs.cells)
        district = np.where(seg_district != None, seg_district, ix.cell_district[near])  # noqa: E711 (elementwise)
        rep, rep_ok = _ints(inc["reported_ms"])
        closed, closed_ok = _ints(inc["closed_ms"])
        lookback_ms = int(cfg.incident_lookback_s * 1000)
        t = ticks[:, None]
        active = ~closed_ok | (closed > t)
        keep = rep_ok & (rep <= t) & (active | (rep > t - lookback_ms))
        row, ti = np.nonzero(keep.T)  # (incident, tick) order, as a cross join of incidents and ticks
        self.ti, self.tick = ti, ticks[ti]
        area = np.asarray([ix.district_position.get(d, -1) for d in district.tolist()], dtype=np.int64)
        self.area = area[row]
        self.district = pl.Series("district", district.tolist(), dtype=S)  # per incident
        self.district_code, self.districts = _codes(self.district)
        self.type_code, self.types = _codes(inc["type"])
        self.type_series, self.severity_series = inc["type"], inc["severity"]
        sev, sev_ok = _ints(inc["severity"])
        self.row = row
        t = self.tick
        rep, dispatched_ms, on_scene_ms = rep[row], *(_ints(inc[c]) for c in ("dispatched_ms", "on_scene_ms"))
        (disp, disp_ok), (scene, scene_ok) = ((v[row], ok[row]) for v, ok in (dispatched_ms, on_scene_ms))
        self.severity, self.severity_ok = sev[row], sev_ok[row]
        self.active = rep <= t  # (reported: kept rows only)
        self.active &= ~closed_ok[row] | (closed[row] > t)
        self.recent = (rep > t - lookback_ms) & (rep <= t)
        self.dispatched = self.recent & disp_ok & (disp <= t)
        self.arrived = self.dispatched & scene_ok & (scene <= t)
        # polars divides by a literal as a multiply by its reciprocal
        self.dispatch_delay_s = (disp - rep).astype(np.float64) * (1.0 / 1000.0)
        self.arrival_delay_s = (scene - disp).astype(np.float64) * (1.0 / 1000.0)
        self.units = _ints(inc["units"])[0][row]  # a null count adds nothing, as polars' sum

    def figures(self, rows: np.ndarray, group: np.ndarray, n_groups: int, p90: bool = True) -> dict[str, np.ndarray]:
        """:data:`brain.vitals.emergency.METRIC_COLUMNS` per group of the rows ``rows`` (in that order),
        NaN for a delay no row of the group has (without the p90 delays unless ``p90``)."""
        act = self.active[rows]
        out = {"active_incidents": np.bincount(group[act], minlength=n_groups)}
        sev, sev_ok = self.severity[rows], self.severity_ok[rows]
        for s in (1, 2, 3, 4):
            out[f"active_sev{s}"] = np.bincount(group[act & sev_ok & (sev == s)], minlength=n_groups)
        out["active_units"] = np.bincount(group[act], weights=self.units[rows][act], minlength=n_groups).round().astype(np.int64)
        out["reported_recent"] = np.bincount(group[self.recent[rows]], minlength=n_groups)
        for name, mask, delay in (("dispatch", self.dispatched, self.dispatch_delay_s), ("arrival", self.arrived, self.arrival_delay_s)):
            m, v = mask[rows], delay[rows]
            total, n = group_sums(v, m, group, n_groups)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[f"mean_{name}_delay_s"] = np.where(n > 0, total / n, np.nan)
            if p90:
                out[f"p90_{name}_delay_s"] = _quantile_linear(v[m], group[m], n, 0.9)
        return out

    def table(self) -> pl.DataFrame:
        """The ``emergency`` table: :func:`brain.vitals.emergency.incident_metrics` by district, type and
        severity per tick, in (tick, district, type, severity) order (nulls first, as polars sorts)."""
        sev, sev_ok = _ints(self.severity_series)
        distinct_sev = np.unique(sev[sev_ok])
        has_null = int(not sev_ok.all())
        sev_code = np.where(sev_ok, np.searchsorted(distinct_sev, sev) + has_null, 0)
        n_t, n_s = max(self.types.len(), 1), len(distinct_sev) + has_null
        per_incident = (self.district_code * n_t + self.type_code) * max(n_s, 1) + sev_code
        n_keys = max(self.districts.len(), 1) * n_t * max(n_s, 1)
        keys, group = np.unique(self.ti * n_keys + per_incident[self.row], return_inverse=True)
        group = group.reshape(-1)
        figures = self.figures(np.arange(len(self.ti)), group, len(keys))
        first = np.zeros(len(keys), dtype=np.int64)  # a row of each group: its district, type, severity, tick
        first[group[::-1]] = np.arange(len(group))[::-1]
        at = self.row[first]
        cols = [series.take(self.district, at), series.take(self.type_series, at), series.take(self.severity_series, at)]
        for name in emergency.METRIC_COLUMNS:
            v = figures[name]
            cols.append(_nulled(name, v) if v.dtype == np.float64 else _i64(name, v))
        cols.append(_i64(T, self.tick[first]))
        return series.frame(cols)


def _quantile_linear(values: np.ndarray, group: np.ndarray, counts: np.ndarray, q: float) -> np.ndarray:
    """Per group, polars' ``quantile(q, "linear")`` of its values (NaN: no value): index ``(n - 1) q`` in
    the sorted values, interpolated as polars does (``frac * (upper - lower) + lower``)."""
    out = np.full(len(counts), np.nan)
    has = np.flatnonzero(counts > 0)
    if not len(has):
        return out
    order = np.lexsort((values, group))
    v = values[order]
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])[has]
    f_idx = (counts[has] - 1).astype(np.float64) * q
    idx = f_idx.astype(np.int64)
    top = np.ceil(f_idx).astype(np.int64)
    lower = v[start + idx]
    upper = v[start + np.minimum(idx + 1, counts[has] - 1)]
    with np.errstate(invalid="ignore"):
        mixed = (f_idx - idx) * (upper - lower) + lower
    out[has] = np.where((idx == top) | (lower == upper), lower, mixed)
    return out


# --- state tables as of each tick (numpy: ticks x rows) ----------------------------------------------
def _codes(values: pl.Series) -> tuple[np.ndarray, pl.Series]:
    """Dense codes of a string column in sorted order (nulls first, as polars' ``sort`` orders them:
    code point order is UTF-8 byte order) and the sorted distinct values."""
    arr = values.to_numpy()
    present = arr != None  # noqa: E711 (elementwise)
    distinct, inverse = np.unique(arr[present].astype(str), return_inverse=True)
    has_null = not present.all()
    codes = np.zeros(len(arr), dtype=np.int64)
    codes[present] = inverse.reshape(-1) + has_null
    return codes, pl.Series(values.name, [None] * has_null + distinct.tolist(), dtype=S)


def _lookup(values: pl.Series, table: Mapping[str, int]) -> np.ndarray:
    """The position of each string in ``table`` (-1 for null or unknown)."""
    arr = values.to_numpy()
    present = arr != None  # noqa: E711 (elementwise)
    out = np.full(len(arr), -1, dtype=np.int64)
    if present.any():
        distinct, inverse = np.unique(arr[present].astype(str), return_inverse=True)
        out[present] = np.asarray([table.get(v, -1) for v in distinct.tolist()], dtype=np.int64)[inverse.reshape(-1)]
    return out


def _group_counts(masks: Mapping[str, np.ndarray], group: np.ndarray, n_groups: int,
                  weights: Mapping[str, tuple[str, np.ndarray]] = {}) -> dict[str, np.ndarray]:
    """Per (tick, group): how many rows of each (ticks x rows) mask hold, and the sums of weights over
    a mask (``name: (mask name, ticks x rows values)``). Rows of group -1 count nowhere."""
    k, n = next(iter(masks.values())).shape
    flat = (np.arange(k, dtype=np.int64)[:, None] * n_groups + group[None, :])
    inside = np.broadcast_to(group >= 0, (k, n))
    out = {name: np.bincount(flat[m & inside], minlength=k * n_groups).reshape(k, n_groups) for name, m in masks.items()}
    for name, (mask, values) in weights.items():
        m = masks[mask] & inside
        # Integer-valued ms durations: the float sum is exact in any order (below 2**53).
        out[name] = np.bincount(flat[m], weights=values[m], minlength=k * n_groups).reshape(k, n_groups)
    return out


def _case_figures(counts: np.ndarray, duration_ms: np.ndarray) -> dict[str, np.ndarray]:
    """The figures of :func:`brain.vitals.grid.case_metrics` from (ticks x groups x 6) counts
    (:data:`brain.kernels.cases.NAMES`) and the summed ms to close of the recently closed cases."""
    c = {name: counts[:, :, j] for j, name in enumerate(case_kernel.NAMES)}
    n = c["closed_recent"]
    with np.errstate(invalid="ignore", divide="ignore"):
        c["on_time_closure_rate"] = np.where(n > 0, c["closed_on_time"] / n, np.nan)
        # The mean in ms, then ms -> h (as case_metrics does).
        c["mean_time_to_close_h"] = np.where(n > 0, duration_ms / n, np.nan) / HOUR_MS
    return c


def _case_table(column: str, distinct: pl.Series, m: dict[str, np.ndarray], ticks: np.ndarray) -> pl.DataFrame:
    """The rows of :func:`brain.vitals.grid.case_metrics` by ``column`` per tick from the figures ``m`` of
    the groups ``distinct`` (in that order): only the groups with a case at the tick."""
    ti, g = np.nonzero(m["exists"] > 0)
    cols = {column: series.take(distinct, g)}
    for name in grid.METRIC_COLUMNS:
        v = m[name][ti, g]
        cols[name] = _nulled(name, v) if v.dtype == np.float64 else _i64(name, v)
    cols[T] = _i64(T, ticks[ti])
    return _frame(cols)


class _CaseState:
    """Cases as of each tick (a case exists from ``reported_ms``; a close after the tick is still
    open): the counts of :func:`brain.vitals.grid.case_metrics` per (tick, group) by a kernel
    (:mod:`brain.kernels.cases`)."""

    def __init__(self, cases: pl.DataFrame, area: np.ndarray, ticks: np.ndarray, cfg: VitalsConfig) -> None:
        self.frame, self.area, self.ticks = cases, area, ticks
        # Writable arrays always: a column without nulls comes zero-copy (read-only) from polars, and
        # numba compiles (or loads) the kernel once more for a read-only signature, in the middle of a run.
        self.times = [a if a.flags.writeable else a.copy() for col in ("reported_ms", "closed_ms", "deadline_ms")
                      for a in _ints(cases[col])]
        self.lookback_ms = int(cfg.case_lookback_s * 1000)

    def metrics(self, group: np.ndarray, n_groups: int) -> dict[str, np.ndarray]:
        """(ticks x groups) arrays of :data:`brain.vitals.grid.METRIC_COLUMNS` and ``exists`` (cases in the group)."""
        return _case_figures(*case_counts(*self.times, self.ticks, self.lookback_ms, HOUR_MS, group.astype(np.int64), n_groups))

    def area_metrics(self, n_districts: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """:meth:`metrics` per (tick, district) and per tick for the whole city."""
        return self.metrics(self.area, n_districts), self.metrics(np.zeros(len(self.area), dtype=np.int64), 1)

    def table(self, column: str, ticks: np.ndarray, nulls: bool) -> pl.DataFrame:
        """:func:`brain.vitals.grid.case_metrics` by ``column`` per tick, in (tick, value) order (only the
        groups with a case at the tick; null values a group of their own when ``nulls``, else dropped)."""
        codes, distinct = _codes(self.frame[column])
        if not nulls and distinct.null_count():
            codes, distinct = codes - 1, distinct[1:]  # the null group (code 0) is dropped
        return _case_table(column, distinct, self.metrics(codes, distinct.len()), ticks)


class _OutageState:
    """Outages as of each tick: live from ``started_ms`` until an ``ended_ms`` after the tick."""

    def __init__(self, outages: pl.DataFrame, area: np.ndarray, district: pl.Series, ticks: np.ndarray) -> None:
        self.frame, self.area, self.district = outages, area, district
        start, start_ok = _ints(outages["started_ms"])
        end, end_ok = _ints(outages["ended_ms"])
        t = ticks[:, None]
        self.live = start_ok & (start <= t) & (~end_ok | (end > t))
        customers, _ = _ints(outages["customers"])  # a null count adds nothing, as polars' sum
        self.customers = np.broadcast_to(customers, self.live.shape)

    def counts(self, group: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
        c = _group_counts({"live": self.live}, group, n_groups)["live"]
        flat = (np.arange(self.live.shape[0])[:, None] * n_groups + group[None, :])
        m = self.live & (group >= 0)[None, :]
        cust = np.bincount(flat[m], weights=self.customers[m], minlength=c.size).reshape(c.shape)
        return c, np.rint(cust).astype(np.int64)

    def table(self, ticks: np.ndarray) -> pl.DataFrame:
        """:func:`brain.vitals.utilities.active_outages` by district, utility per tick, in (tick, district,
        utility) order (live groups only)."""
        d_code, districts = _codes(self.district)
        u_code, utils = _codes(self.frame["utility"])
        n_u = max(utils.len(), 1)
        groups, code = np.unique(d_code * n_u + u_code, return_inverse=True)
        n, cust = self.counts(code.reshape(-1).astype(np.int64), len(groups))
        ti, g = np.nonzero(n > 0)
        return _frame({
            "district": series.take(districts, groups[g] // n_u), "utility": series.take(utils, groups[g] % n_u),
            "active_outages": _i64("active_outages", n[ti, g]), "customers_affected": _i64("customers_affected", cust[ti, g]),
            T: _i64(T, ticks[ti]),
        })
