"""``compute_vitals_batch``: the vital signs of K ticks in one vectorised pass.

:func:`brain.vitals.compute_vitals` costs a fixed few tens of ms per call in polars overhead
(hundreds of small eager operations). This computes the same tables for K tick ends at once, so
that overhead is paid once per batch instead of once per tick, and runs only a handful of polars
operations per batch (Enum casts placing ids, the time-zone conversion of noise windows, gathers
and the output frames), none of them a group-by or a join (but for the first lookup of a new
block of registry ids): rows are placed by dense integer keys (a
segment's or sensor's rank, a tick's position, a (tick, area) grid row) with numpy instead of joins,
state tables are evaluated as (ticks x rows) masks, and the per-row formulas and aggregations of
:mod:`brain.vitals.compute` are evaluated in numpy and in the numba kernels of ``brain/kernels``
(``latest``: each key's current window; ``segments``: the per-segment traffic figures;
``groupsum``: the area sums; ``freshness``: the registry counts) with the floating-point
operations polars and numpy do, in the same order, so with the same bits: ``+ - * /`` (polars
divides by a literal as a multiply by its reciprocal, so that is done the same way here), polars'
``pow`` (numpy's), ``log10`` (``ln(x) / ln(10)``), linear quantile, numpy's ``interp``, and polars'
grouped float sums and ``sum().over()``, which are Kahan-compensated sums in row order
(:mod:`brain.kernels.groupsum`; its tests check that against polars). The tables are the
one-window formulation's tick by tick (the tests allow 1e-9 relative), and
``bench/vitals_batch_speed.py`` checks them bit for bit against an earlier version on the ingest
benchmark's day.

Input (``frames``): the names and columns of :data:`brain.vitals.INPUT_SCHEMAS`, with

* per-window tables (``traffic, probe, air_1h, air_24h, air_8h_o3, noise, utility``): the rows of
  all K ticks stacked, each row tagged with the tick it belongs to in a ``tick_end_ms`` column
  (required when K > 1; an hourly air row's ``window_end_ms`` is its hour's end, not the tick).
  Each tick sees only its own rows, exactly as if they had been passed to ``compute_vitals``
  (rows tagged with a tick not in ``window_ends_ms`` are ignored).
* ``sensor_last_seen``: ``sensor_id, tick_end_ms, last_seen_ms`` (last seen as of each tick); without
  ``tick_end_ms`` one table applies to every tick.
* state tables (``outages, cases, incidents``): the current state after the last tick, evaluated
  as of each tick end from their timestamps (a case or incident exists from ``reported_ms``, an
  outage from ``started_ms``; a close / end after the tick counts as still open).

Output: the tables of ``compute_vitals``, stacked over the ticks (ordered by tick, then as
``compute_vitals`` orders them), each with one extra last column ``tick_end_ms``; the tables that
have no ``window_end_ms`` in ``compute_vitals`` (:data:`TICK_ONLY_TABLES`) also get
``window_end_ms`` = the tick. For the per-sensor tables ``window_end_ms`` stays the data window's
end (an air station's hour), so group by ``tick_end_ms``; :func:`split_ticks` gives exactly what
``compute_vitals`` returns per tick. A tick without any input row still gets its district and city rows.

The pieces live in :mod:`brain.vitals.stack` by concept: ``keys`` (the per-city index, placing rows
by integer keys), ``families`` (per-segment/sensor tables), ``states`` (cases, outages, incidents as of
each tick), ``registry`` (sensor freshness), ``areas`` (district and city tables).

Example: two ticks of the one-segment city of :mod:`brain.vitals.compute`, the second one quiet:
    >>> import polars as pl
    >>> from brain.city.model import City, District, GridCell, RoadSegment, Street
    >>> city = City(name="Demo", admin_code="110000", timezone="Asia/Shanghai", center=[116.4, 39.9],
    ...     districts=[District(id="D1", name="East", admin_code="110101", center=[116.4, 39.9])],
    ...     streets=[Street(id="ST1", name="s", district="D1")],
    ...     cells=[GridCell(id="C1", district="D1", street="ST1", center=[116.4, 39.9])],
    ...     segments=[RoadSegment(id="S1", name="Ring", district="D1", cell="C1", road_class="arterial",
    ...         length_m=800.0, free_flow_kmh=60.0, lanes=2, line=[[116.4, 39.9], [116.41, 39.9]])],
    ...     intersections=[], corridors=[], sensors=[])
    >>> traffic = pl.DataFrame({"segment_id": ["S1"], "window_start_ms": [0], "window_end_ms": [300_000],
    ...     "volume_veh": [120.0], "speed_kmh": [30.0], "occupancy_pct": [18.0], "n_readings": [5],
    ...     "tick_end_ms": [300_000]})
    >>> out = compute_vitals_batch({"traffic": traffic}, city, [300_000, 600_000])
    >>> out["segment_traffic"].select("tick_end_ms", "tti").rows()
    [(300000, 2.0)]
    >>> [(t, tpi and round(tpi, 2)) for t, tpi in out["district"].select("tick_end_ms", "tpi").rows()]
    [(300000, 7.33), (600000, None)]
    >>> per_tick = split_ticks(out, [300_000, 600_000])
    >>> per_tick[1]["segment_traffic"].height, per_tick[1]["district"].height
    (0, 1)
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from brain.city.model import City
from brain.vitals.config import VitalsConfig
from brain.vitals.inputs import INPUT_SCHEMAS, city_refs
from brain.vitals.stack.casetally import CaseTally, _TalliedCases
from brain.vitals.stack.liverows import LiveRows
from brain.vitals.stack.areas import AREA_COLUMNS, _AreaGrid, _area_tables  # noqa: F401 (AREA_COLUMNS: public)
from brain.vitals.stack.families import _air_station, _noise_sensor, _segment_traffic, _utility_sensor
from brain.vitals.stack.keys import T, WINDOW_TABLES, _conformed, _index, _window_rows  # noqa: F401 (WINDOW_TABLES: public)
from brain.vitals.stack.registry import _sensor_counts, _sensor_groups, _sensor_health
from brain.vitals.stack.states import _CaseState, _IncidentState, _OutageState, _cell_district, _lookup


def _tick_list(window_ends_ms) -> list[int]:
    if isinstance(window_ends_ms, (str, bytes)) or not isinstance(window_ends_ms, Sequence | np.ndarray | pl.Series):
        raise ValueError(f"window_ends_ms must be a sequence of integer epoch times in ms, got {window_ends_ms!r}")
    values = list(window_ends_ms)
    if any(isinstance(t, bool) or not isinstance(t, (int, np.integer)) for t in values):
        raise ValueError(f"window_ends_ms must hold integer epoch times in ms, got {values[:5]!r}")
    ends = [int(t) for t in values]
    if not ends:
        raise ValueError("window_ends_ms is empty: give at least one tick end")
    if any(b <= a for a, b in zip(ends, ends[1:])):
        raise ValueError("window_ends_ms must be strictly ascending")
    return ends


def compute_vitals_batch(frames: Mapping[str, pl.DataFrame], city: City, window_ends_ms: Sequence[int],
                         config: VitalsConfig | None = None, *, cases: CaseTally | None = None,
                         incidents: LiveRows | None = None, outages: LiveRows | None = None) -> dict[str, pl.DataFrame]:
    """All vital-sign frames for each of the tick ends ``window_ends_ms`` (see the module docstring).

    ``cases``: a :class:`brain.vitals.stack.casetally.CaseTally` watching the lifecycle table that
    ``frames["cases"]`` is the current state of; the grid-case figures then come from its counters
    (O(cells) per tick) instead of from every case (a tally of another lookback is not used).
    ``incidents`` / ``outages``: :class:`brain.vitals.stack.liverows.LiveRows` watching the lifecycle
    tables that ``frames["incidents"]`` / ``frames["outages"]`` are the current state of; only the rows
    that can still count at these ticks are read (the same figures, O(live rows) instead of O(rows kept)).

    >>> from brain.city import demo_city_path, load_city
    >>> out = compute_vitals_batch({}, load_city(demo_city_path()), [300_000, 600_000])
    >>> out["city"].select("tick_end_ms", "window_end_ms").rows()
    [(300000, 300000), (600000, 600000)]
    """
    cfg = config or VitalsConfig()
    unknown = set(frames) - set(INPUT_SCHEMAS)
    if unknown:
        raise ValueError(f"unknown window frame(s) {sorted(unknown)}; expected some of {', '.join(INPUT_SCHEMAS)}")
    if not isinstance(city, City):
        raise ValueError(f"city must be a brain.city.model.City, got {type(city).__name__}")
    ends = _tick_list(window_ends_ms)
    if cases is not None and not isinstance(cases, CaseTally):
        raise ValueError(f"cases must be a brain.vitals.stack.casetally.CaseTally, got {type(cases).__name__}")
    for name, live in (("incidents", incidents), ("outages", outages)):
        if live is not None and not isinstance(live, LiveRows):
            raise ValueError(f"{name} must be a brain.vitals.stack.liverows.LiveRows, got {type(live).__name__}")
    if outages is not None:
        frames = {**frames, "outages": outages.frame(ends[0])}
    if incidents is not None and incidents.lookback_ms == int(cfg.incident_lookback_s * 1000):
        frames = {**frames, "incidents": incidents.frame(ends[0])}
    return _compute(frames, city, ends, ends[0] if len(ends) == 1 else None, cfg, cases)


def _compute(frames, city: City, ends: list[int], single: int | None, cfg: VitalsConfig, tally: CaseTally | None = None) -> dict[str, pl.DataFrame]:
    refs = city_refs(city)
    ix = _index(city, refs)
    ticks = np.asarray(ends, dtype=np.int64)
    window_rows = _window_rows(frames, ix, ticks, single)
    seg = _segment_traffic(window_rows, ix, ticks, cfg)
    air_st = _air_station(window_rows, ix, ticks, cfg)
    noise_st = _noise_sensor(window_rows, ix, ticks, cfg, city.timezone)
    util_st = _utility_sensor(window_rows, ix, ticks, cfg)
    out_frame = _conformed(frames, "outages")
    out_cell = _lookup(out_frame["cell_id"], ix.cell_position)
    outages = _OutageState(out_frame, ix.cell_area[out_cell], _cell_district(ix, out_cell), ticks)
    if tally is not None and tally.lookback_ms == int(cfg.case_lookback_s * 1000):
        cases = _TalliedCases(tally.snapshots(ticks), ix)
    else:
        case_frame = _conformed(frames, "cases")
        cases = _CaseState(case_frame, ix.cell_area[_lookup(case_frame["cell_id"], ix.cell_position)], ticks, cfg)
    incidents = _IncidentState(frames, ix, refs, ticks, cfg)
    sg = _sensor_groups(city, refs)
    status = _sensor_counts(frames, sg, ticks, cfg)

    grid_ix = _AreaGrid(ticks, ix)
    district, city_rows = _area_tables(seg, air_st, noise_st, util_st, outages, cases, incidents, status, sg, grid_ix, refs, city, cfg)

    grid_cell = cases.table("cell_id", ticks, nulls=False)
    grid_cell.insert_column(1, _cell_district(ix, _lookup(grid_cell["cell_id"], ix.cell_position)))
    grid_category = cases.table("category", ticks, nulls=True)
    util_out = outages.table(ticks)
    emerg = incidents.table()
    tables = {
        "segment_traffic": seg[0],
        "air_station": air_st[0],
        "noise_sensor": noise_st[0],
        "utility_sensor": util_st[0],
        "utility_outages": util_out,
        "grid_cell": grid_cell,
        "grid_category": grid_category,
        "emergency": emerg,
        "district": district,
        "city": city_rows,
    }
    # Stacked tables also say their tick as window_end_ms where compute_vitals has no such column.
    for name in ("utility_outages", "grid_cell", "grid_category", "emergency"):
        frame = tables[name]
        tables[name] = frame[[c for c in frame.columns if c != T]].hstack([frame[T].alias("window_end_ms"), frame[T]])
    tables["sensor_health"] = _sensor_health(status, sg, ticks)
    return {name: tables[name] for name in TABLE_ORDER}


TABLE_ORDER = ("segment_traffic", "air_station", "noise_sensor", "utility_sensor", "utility_outages", "grid_cell",
               "grid_category", "emergency", "sensor_health", "district", "city")


#: Tables that compute_vitals gives without a ``window_end_ms`` column (the batch adds it = the tick).
TICK_ONLY_TABLES: tuple[str, ...] = ("utility_outages", "grid_cell", "grid_category", "emergency", "sensor_health")


def warm_up() -> None:
    """Compile (or load from numba's cache) the kernels of this module and :mod:`brain.vitals.air`, so
    that the first batch does not pay for it.

    >>> warm_up()  # then a first compute_vitals_batch runs compiled code
    """
    from brain.kernels import cases, freshness, groupsum, iaqi, latest, segments

    for kernel in (cases, freshness, groupsum, iaqi, latest, segments):
        kernel.warm_up()


def split_ticks(batch: Mapping[str, pl.DataFrame], window_ends_ms: Sequence[int]) -> list[dict[str, pl.DataFrame]]:
    """Per tick, the tables of a :func:`compute_vitals_batch` result without ``tick_end_ms``, as
    :func:`brain.vitals.compute_vitals` returns them (same order as ``window_ends_ms``).

    >>> import polars as pl
    >>> b = {"city": pl.DataFrame({"health_index": [90.0, 80.0], "tick_end_ms": [1, 2]})}
    >>> [t["city"].rows() for t in split_ticks(b, [1, 2])]
    [[(90.0,)], [(80.0,)]]
    """
    ends = [int(t) for t in window_ends_ms]
    pos = {t: i for i, t in enumerate(ends)}
    out: list[dict[str, pl.DataFrame]] = [{} for _ in ends]
    for name, frame in batch.items():
        if name in TICK_ONLY_TABLES and "window_end_ms" in frame.columns:
            frame = frame.drop("window_end_ms")
        parts = frame.partition_by(T, as_dict=True, include_key=False, maintain_order=True)
        empty = frame.clear().drop(T)
        for i in range(len(ends)):
            out[i][name] = empty
        for (t,), part in parts.items():
            if t in pos:
                out[pos[t]][name] = part
    return out
