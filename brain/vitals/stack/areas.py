"""The district and city tables of :mod:`brain.vitals.batch`: every family's figures per (tick, area)
grid row, the health scores and the index.

Example: two ticks of a two-district city are six grid rows (districts, then the city, per tick):
    >>> import numpy as np
    >>> grid_rows = np.arange(2 * 3).reshape(2, 3)
    >>> grid_rows[:, :2].reshape(-1).tolist(), grid_rows[:, 2].tolist()
    ([0, 1, 3, 4], [2, 5])
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from brain import series
from brain.city.model import City
from brain.kernels.groupsum import multi_group_sums
from brain.vitals import air, traffic
from brain.vitals.areas import AREA_COLUMNS, area_health_arrays
from brain.vitals.config import VitalsConfig
from brain.vitals.inputs import CityRefs
from brain.vitals.stack.families import _Family
from brain.vitals.stack.keys import F64, T, _Index, _gt0, _i64, _nulled, _pick
from brain.vitals.stack.registry import _SensorGroups, _shares
from brain.vitals.stack.states import _CaseState, _IncidentState, _OutageState


# --- areas (districts and the whole city) -----------------------------------------------------------
class _AreaGrid:
    """The (tick, area) rows of the district and city tables: row ``_r = tick position * A + area``,
    the areas being the city's districts in order, then the city (``A`` = districts + 1)."""

    def __init__(self, ticks: np.ndarray, ix: _Index) -> None:
        self.ticks = ticks
        self.n_districts = len(ix.district_ids)
        self.n_areas = self.n_districts + 1
        self.n_rows = len(ticks) * self.n_areas
        self.district_position = ix.district_position
        self.district_ids = ix.district_ids
        self.area_position = {**ix.district_position, "__city__": self.n_districts}

    def rows(self, ti: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row (tick position ``ti``, district position ``a``) twice: in its district (if any) and in
        the city. Row positions (input order kept within each area) and their ``_r``."""
        placed = np.flatnonzero(a >= 0)
        rows = np.concatenate([placed, np.arange(len(a))])
        r = np.concatenate([ti[placed] * self.n_areas + a[placed], ti * self.n_areas + self.n_districts])
        return rows, r

    def spread(self, by_district: np.ndarray, city: np.ndarray) -> np.ndarray:
        """(ticks x districts) and (ticks x 1) figures as one value per grid row."""
        return np.concatenate([by_district, city], axis=1).reshape(-1)

    def sums(self, family: _Family, terms: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per grid row, the sums (Kahan, in row order: polars' grouped sums) and counts of the terms
        ``(values, where summed)`` over the family's rows, each row in its district (if any) and in
        the city; and which grid rows have a row at all. Sums and counts are (grid rows x terms)."""
        n_d, n_areas = self.n_districts, self.n_areas
        groups = np.empty((len(family.ti), 2), dtype=np.int64)
        groups[:, 0] = np.where(family.area >= 0, family.ti * n_areas + family.area, -1)
        groups[:, 1] = family.ti * n_areas + n_d
        values = np.empty((len(terms), len(family.ti)))
        ok = np.empty((len(terms), len(family.ti)), dtype=bool)
        for j, (v, where) in enumerate(terms):
            values[j], ok[j] = v, where
        total, count = multi_group_sums(values, ok, groups, self.n_rows)
        present = np.zeros(self.n_rows, dtype=bool)
        present[groups[:, 1]] = True
        present[groups[:, 0][groups[:, 0] >= 0]] = True
        return total, count, present

    def plain_figures(self, *requests) -> list[dict[str, np.ndarray]]:
        """Sums, counts and maxima of per-row terms of several families per grid row. A request is
        ``(family, {term: (values, where not null, dtype)}, {term: "sum" | "count" | "max" or a tuple of
        them})``; the answer per request has ``"term:how"`` -> one value per grid row (NaN for a float
        where the area has no row, 0 for a count).

        Maxima and sums of booleans are exact in numpy. Float sums are polars' (one eager group-by per
        family), and polars picks its summation by the shape of the query and the frame (compensated
        in row order, or plain): the one-window formulation's aggregations took them with their
        counts or means, so a float sum asked with its count is taken with it, and one asked alone
        alone, as the stacked aggregations before this one did."""
        answers = []
        for family, terms, hows in requests:
            rows, r = self.rows(family.ti, family.area)
            got, polars_aggs = {}, {}
            for term, how in hows.items():
                values, ok, dtype = terms[term]
                ok_r = ok[rows]
                asked = (how,) if isinstance(how, str) else how
                for h in asked:
                    if h == "sum" and dtype == pl.Boolean:
                        got[f"{term}:{h}"] = np.bincount(r[ok_r & (values[rows] != 0)], minlength=self.n_rows)
                    elif h == "count" and "sum" not in asked:
                        got[f"{term}:{h}"] = np.bincount(r[ok_r], minlength=self.n_rows)
                    elif h == "max":
                        full = np.full(self.n_rows, np.nan)
                        np.fmax.at(full, r[ok_r], values[rows][ok_r])
                        got[f"{term}:{h}"] = full
                    else:
                        polars_aggs.setdefault(term, []).append(h)
            if polars_aggs:
                total, count, present = self.sums(family, [terms[term][:2] for term in polars_aggs])
                for j, (term, hs) in enumerate(polars_aggs.items()):
                    for h in hs:  # an area without rows: NaN
                        got[f"{term}:{h}"] = count[:, j] if h == "count" else np.where(present, total[:, j], np.nan)
            answers.append(got)
        return answers


_ZERO_COLS = ("cases_new_last_hour", "cases_open", "cases_overdue", "outages_active", "outage_customers", "incidents_active",
              "incidents_active_sev1", "incidents_active_sev2", "incidents_active_sev3", "incidents_active_sev4",
              "noise_sensors", "sensors_registered")




def _traffic_area(seg: _Family, grid_ix: _AreaGrid, cfg: VitalsConfig) -> dict[str, np.ndarray]:
    """:func:`brain.vitals.traffic.network_aggregations` of the segment rows per grid row (NaN where
    an area has no segment row): the same filtered sums (taken in row order within each (tick, area)
    as polars' grouped sums take them, see :mod:`brain.kernels.groupsum`) and the same ratios."""
    col = seg.columns
    w, w_ok = col["vkm"][:2]
    w_pos = _gt0(w, w_ok)
    terms = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for name in ("tpi", "tti"):  # vehicle-km weighted means
            v, v_ok = col[name][:2]
            ok = v_ok & ~np.isnan(v) & w_pos
            terms += [(v * w, ok), (w, ok)]
        speed, speed_ok = col["speed_kmh"][:2]
        sp_ok = _gt0(speed, speed_ok) & w_pos
        terms += [(w, sp_ok), (w / speed, sp_ok)]
    length = col["length_km"][0]
    level = col["congestion_level"][0]
    known = level > 0
    terms += [(length, known), (length, known & (level >= cfg.congested_min_level)), (np.where(w_ok, w, 0.0), np.ones(len(w), dtype=bool))]
    total, _, present = grid_ix.sums(seg, terms)
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        out["tpi"], out["tti"] = total[:, 0] / total[:, 1], total[:, 2] / total[:, 3]
        out["mean_speed_kmh"] = total[:, 4] / total[:, 5]
        known_km = total[:, 6]
        out["congested_km_share"] = np.where(known_km > 0, total[:, 7] / known_km, np.nan)
    out["vkm"], out["road_km_observed"] = total[:, 8], known_km
    return {name: np.where(present, v, np.nan) for name, v in out.items()}


def _incident_area(incidents: _IncidentState, grid_ix: _AreaGrid) -> dict[str, np.ndarray]:
    """:meth:`_IncidentState.figures` per grid row: the incident rows in their district (if any), then
    all of them in the city."""
    rows, r = grid_ix.rows(incidents.ti, incidents.area)
    return incidents.figures(rows, r, grid_ix.n_rows, p90=False)  # (the area tables have no p90)


def _area_tables(seg, air_st, noise_st, util_st, outages: _OutageState, cases: _CaseState, incidents: _IncidentState,
                 status: Mapping[str, np.ndarray], sg: "_SensorGroups", grid_ix: _AreaGrid, refs: CityRefs, city: City,
                 cfg: VitalsConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The district and city tables: per (tick, area) the families' figures, the health scores and the
    index. Columns are built as numpy over the grid (NaN: null), then cut into the two tables."""
    k, n_d, n_areas = len(grid_ix.ticks), grid_ix.n_districts, grid_ix.n_areas
    cols: dict[str, np.ndarray] = {}
    # Traffic: traffic.network_aggregations over the segment table, per (tick, district) and per tick,
    # the very queries of the one-window formulation (their float sums are polars', whose algorithm
    # depends on the query's shape and the frame's size).
    cols.update(_traffic_area(seg, grid_ix, cfg))
    # Air, noise, utilities and incidents: plain per-row terms (numpy, exact) whose sums, counts and
    # maxima are taken per grid row; the ratios are then taken in numpy (reference._area_figures).
    air_terms = {name: (x, ok, F64) for name, (x, ok, _) in air_st.columns.items()}
    laeq, laeq_ok, _ = noise_st.columns["laeq_db"]
    exceed, exceed_ok, _ = noise_st.columns["exceedance_db"]
    with np.errstate(invalid="ignore", over="ignore"):
        # polars' pow of a divide by a literal (a multiply by its reciprocal), as the one-window figure
        energy = np.where(laeq_ok, 10.0 ** (laeq * (1.0 / 10.0)), np.nan)
    noise_terms = {"_energy": (energy, laeq_ok, F64), "_le0": ((exceed <= 0).astype(np.float64), laeq_ok & exceed_ok, pl.Boolean),
                   "_exceed": (exceed, exceed_ok, F64)}
    within, within_ok, _ = util_st.columns["within_tolerance"]
    dev, dev_ok, _ = util_st.columns["deviation_pct"]
    util_terms = {"_within": (within, within_ok, pl.Boolean), "_absdev": (np.abs(dev), dev_ok, F64)}
    a, n, u = grid_ix.plain_figures(
        (air_st, air_terms, {c: ("sum", "count") for c in air_terms}),
        (noise_st, noise_terms, {"_energy": ("sum", "count"), "_le0": ("sum", "count"), "_exceed": "max"}),
        (util_st, util_terms, {"_within": ("sum", "count"), "_absdev": "max"}),
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        air_means = {c: np.where(a[f"{c}:count"] > 0, a[f"{c}:sum"] / a[f"{c}:count"], np.nan) for c in air_terms}
        cols["noise_sensors"] = n["_energy:count"].astype(np.int64)
        mean_energy = np.where(n["_energy:count"] > 0, n["_energy:sum"] / n["_energy:count"], np.nan)
        cols["noise_laeq_db"] = 10.0 * (np.log(mean_energy) / np.log(10.0))  # polars' log10: ln(x) / ln(10)
        cols["noise_within_limit_share"] = np.where(n["_le0:count"] > 0, n["_le0:sum"] / n["_le0:count"], np.nan)
        cols["noise_max_exceedance_db"] = n["_exceed:max"]
        cols["utility_within_tolerance_share"] = np.where(u["_within:count"] > 0, u["_within:sum"] / u["_within:count"], np.nan)
        cols["utility_max_abs_deviation_pct"] = u["_absdev:max"]
    air_area = air._aqi_columns(air_means, "hourly",
                                cfg.aqi_standard, cfg.pm_basis, only=("aqi", "level", "category_zh", "colour_hex", "primary_pollutant"))
    cols["aqi"] = air_area["aqi"].to_numpy()
    for name, out in (("level", "aqi_level"), ("category_zh", "aqi_category_zh"), ("colour_hex", "aqi_colour_hex"),
                      ("primary_pollutant", "primary_pollutant")):
        cols[out] = air_area[name]  # strings stay polars: gathered per table
    # Incidents: emergency.incident_metrics per (tick, area) by the one-window formulation's query
    e = _incident_area(incidents, grid_ix)
    cols["incidents_active"] = e["active_incidents"]
    cols.update({f"incidents_active_sev{s}": e[f"active_sev{s}"] for s in (1, 2, 3, 4)})
    cols["mean_dispatch_delay_s"], cols["mean_arrival_delay_s"] = e["mean_dispatch_delay_s"], e["mean_arrival_delay_s"]

    def per_area(fn, group: np.ndarray):
        return fn(group, n_d), fn(np.zeros(len(group), dtype=np.int64), 1)

    by_d, whole = cases.area_metrics(n_d)
    for name, out in (("new_last_hour", "cases_new_last_hour"), ("open_backlog", "cases_open"), ("overdue", "cases_overdue"),
                      ("on_time_closure_rate", "cases_on_time_rate"), ("mean_time_to_close_h", "cases_mean_time_to_close_h")):
        cols[out] = grid_ix.spread(by_d[name], whole[name])
    (n_out_d, cust_d), (n_out_c, cust_c) = per_area(outages.counts, outages.area)
    cols["outages_active"], cols["outage_customers"] = grid_ix.spread(n_out_d, n_out_c), grid_ix.spread(cust_d, cust_c)
    # Registry figures: the (district, family) groups' counts summed per area (null for an area without sensors).
    onehot = (sg.group_area[:, None] == np.arange(n_d)[None, :]).astype(np.int64)
    has = grid_ix.spread(np.broadcast_to(onehot.sum(axis=0) > 0, (k, n_d)), np.full((k, 1), sg.groups.height > 0))
    summed = {name: grid_ix.spread(v @ onehot if v.dtype != np.float64 else v @ onehot.astype(np.float64), v.sum(axis=1, keepdims=True))
              for name, v in status.items()}
    shares = _shares(summed)
    cols["sensors_registered"] = summed["registered"]
    for name, out in (("fresh_share", "sensors_fresh_share"), ("silent_share", "sensors_silent_share"),
                      ("reported_share", "registry_reported_share"), ("metadata_complete_share", "registry_metadata_share")):
        cols[out] = np.where(has, shares[name], np.nan)

    def arr(name: str) -> np.ndarray:
        v = cols[name]
        return v if v.dtype == np.float64 else v.astype(np.float64)

    h = area_health_arrays(arr, grid_ix.n_rows, city, cfg)
    lvl = h.pop("tpi_level")
    cols["tpi_level"] = np.where(lvl == 0, np.nan, lvl)  # 0: unknown -> null
    cols["tpi_level_name"] = _pick(tuple(traffic.tpi_level_names(np.arange(lvl.max(initial=0) + 1), cfg.congestion_standard)), lvl)
    cols.update(h)
    cols[T] = cols["window_end_ms"] = np.repeat(grid_ix.ticks, n_areas)
    area_of_row = np.tile(np.arange(n_areas), k)
    cols["name"] = _pick((*refs.districts["name"].to_list(), city.name), area_of_row)
    cols["district"] = _pick((*refs.districts["district"].to_list(), None), area_of_row)

    # The district rows and the city rows of every column, cut from the grid as numpy (strings
    # gathered) before any Series is made: no gather of a whole frame twice.
    grid_rows = np.arange(grid_ix.n_rows).reshape(k, n_areas)
    tables = []
    for rows in (grid_rows[:, :n_d].reshape(-1), grid_rows[:, n_d]):
        columns = []
        for name in (*AREA_COLUMNS, T):
            v = cols[name]
            if name in _AREA_STRINGS:
                columns.append(series.take(v, rows).alias(name))
                continue
            v = v[rows]
            if name in _AREA_INTS:
                columns.append(_i64(name, np.where(np.isnan(v), 0, v).astype(np.int64), ~np.isnan(v)) if v.dtype.kind == "f" else _i64(name, v))
            else:
                columns.append(_nulled(name, v))
        tables.append(series.frame(columns))
    return tables[0], tables[1]


_AREA_STRINGS = frozenset({"district", "name", "tpi_level_name", "aqi_level", "aqi_category_zh", "aqi_colour_hex", "primary_pollutant"})


_AREA_INTS = frozenset({*_ZERO_COLS, "tpi_level", "window_end_ms", T})
