"""Traffic vital signs: Travel Time Index, TPI (0-10) and its five levels, speed bands, congestion share.

* **TTI** (拥堵延时指数) = actual travel time / free-flow travel time. From a probe travel time it is
  ``travel_time_s / free_flow_time_s``; from a detector speed over the same length it is
  ``free_flow_kmh / speed_kmh``.
* **TPI** (交通指数, DB11/T 785 levels) is piecewise linear in TTI through the points of the table
  ``db11t785_2011.yaml``: TTI 1.0 -> 0, 1.2 -> 2, 1.5 -> 4, 1.8 -> 6, 2.1 -> 8, 2.4 -> 10 (the
  extra travel time over free flow that defines each level), clamped to [0, 10]; TTI below 1
  (faster than free flow) is TPI 0. Aggregates over several segments weight by vehicle-km.
* **Levels** 畅通 / 基本畅通 / 轻度拥堵 / 中度拥堵 / 严重拥堵 from TPI bands [0,2), [2,4), [4,6), [6,8), [8,10].
* **Speed bands**: the same five levels from the segment speed and its road class.
* **Congested road-km share**: the share of road length (km) at or above a level (default 中度拥堵).

Example: an 800 m arterial with free flow 60 km/h takes 48 s free; a probe time of 72 s is
TTI 1.5 -> TPI 4.0, 轻度拥堵; its speed 800 m / 72 s = 40 km/h is level 2 (基本畅通, 30-40 km/h):
    >>> t = tti_from_travel_time([72.0], [48.0]); t.tolist()
    [1.5]
    >>> tpi_from_tti(t).tolist(), tpi_level_names(tpi_level(tpi_from_tti(t)))
    ([4.0], ['轻度拥堵'])
    >>> speed_level([40.0], ["arterial"]).tolist()
    [2]
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from brain.vitals.tables import load_table

DEFAULT_STANDARD = "db11t785-2011"


@dataclass(frozen=True)
class CongestionTable:
    """A parsed, checked congestion table (see :func:`congestion_table`).

    >>> congestion_table().road_classes
    ('expressway', 'arterial', 'secondary')
    """

    standard: str
    tti_points: np.ndarray
    tpi_points: np.ndarray
    level_tpi_min: np.ndarray  # lower TPI edge of levels 1..5
    names_zh: tuple[str, ...]
    names_en: tuple[str, ...]
    road_classes: tuple[str, ...]
    speed_edges_kmh: np.ndarray  # (n_classes, n_levels - 1), descending per row


@functools.cache
def congestion_table(standard: str = DEFAULT_STANDARD) -> CongestionTable:
    """The parsed congestion table of ``standard``.

    >>> congestion_table().names_zh[0], congestion_table().speed_edges_kmh[0].tolist()
    ('畅通', [65.0, 50.0, 35.0, 20.0])
    """
    raw = load_table(standard)
    tti = np.asarray(raw["tpi_from_tti"]["tti"], dtype=np.float64)
    tpi = np.asarray(raw["tpi_from_tti"]["tpi"], dtype=np.float64)
    if len(tti) != len(tpi) or len(tti) < 2 or np.any(np.diff(tti) <= 0) or np.any(np.diff(tpi) < 0):
        raise ValueError(f"congestion table {standard!r}: tpi_from_tti needs equal-length increasing points")
    levels = raw["levels"]
    bands = raw["speed_bands_kmh"]
    edges = np.asarray([bands[c] for c in bands], dtype=np.float64)
    if edges.shape[1] != len(levels) - 1 or np.any(np.diff(edges, axis=1) >= 0):
        raise ValueError(f"congestion table {standard!r}: each speed band needs {len(levels) - 1} decreasing edges")
    return CongestionTable(
        standard=standard,
        tti_points=tti,
        tpi_points=tpi,
        level_tpi_min=np.asarray([lv["tpi_min"] for lv in levels], dtype=np.float64),
        names_zh=tuple(lv["name_zh"] for lv in levels),
        names_en=tuple(lv["name_en"] for lv in levels),
        road_classes=tuple(bands),
        speed_edges_kmh=edges,
    )


def tti_from_travel_time(travel_time_s, free_flow_time_s) -> np.ndarray:
    """TTI = travel time / free-flow travel time (NaN where either is missing).

    >>> tti_from_travel_time([96.0, 40.0], [48.0, 50.0]).tolist()
    [2.0, 0.8]
    """
    tt = np.asarray(travel_time_s, dtype=np.float64)
    ff = np.asarray(free_flow_time_s, dtype=np.float64)
    if np.any(ff <= 0):
        raise ValueError("free-flow travel times must be > 0")
    if np.any(tt < 0):
        raise ValueError("travel times must be >= 0")
    return tt / ff


def tti_from_speed(speed_kmh, free_flow_kmh) -> np.ndarray:
    """TTI from a speed over the whole segment: free-flow speed / speed (inf at speed 0).

    >>> tti_from_speed([30.0, 0.0], [60.0, 60.0]).tolist()
    [2.0, inf]
    """
    v = np.asarray(speed_kmh, dtype=np.float64)
    ff = np.asarray(free_flow_kmh, dtype=np.float64)
    if np.any(ff <= 0):
        raise ValueError("free-flow speeds must be > 0")
    if np.any(v < 0):
        raise ValueError("speeds must be >= 0")
    with np.errstate(divide="ignore"):
        return ff / v


def tpi_from_tti(tti, standard: str = DEFAULT_STANDARD) -> np.ndarray:
    """TPI 0-10, piecewise linear in TTI (clamped at both ends; NaN stays NaN).

    Example: TTI 1.35 lies halfway between 1.2 (TPI 2) and 1.5 (TPI 4): 2 + (1.35-1.2)/0.3*2 = 3.0.
    TTI 2.1 (+110%) is TPI 8; TTI 5 clamps to 10; TTI 0.9 to 0.

    >>> tpi_from_tti([1.35, 2.1, 5.0, 0.9]).round(6).tolist()
    [3.0, 8.0, 10.0, 0.0]
    """
    table = congestion_table(standard)
    t = np.asarray(tti, dtype=np.float64)
    out = np.interp(np.nan_to_num(t, nan=0.0, posinf=1e300), table.tti_points, table.tpi_points)
    return np.where(np.isnan(t), np.nan, out)


def tpi_level(tpi, standard: str = DEFAULT_STANDARD) -> np.ndarray:
    """Level 1..5 of TPI values (0 where TPI is NaN).

    >>> tpi_level([0.0, 1.99, 2.0, 6.5, 8.0, 10.0, float("nan")]).tolist()
    [1, 1, 2, 4, 5, 5, 0]
    """
    table = congestion_table(standard)
    x = np.asarray(tpi, dtype=np.float64)
    lvl = np.searchsorted(table.level_tpi_min, x, side="right")
    return np.where(np.isnan(x), 0, lvl)


def tpi_level_names(levels, standard: str = DEFAULT_STANDARD, lang: str = "zh") -> list[str | None]:
    """Names of levels 1..5 (None for 0 = unknown).

    >>> tpi_level_names([1, 5, 0])
    ['畅通', '严重拥堵', None]
    """
    table = congestion_table(standard)
    names = np.asarray((None,) + (table.names_zh if lang == "zh" else table.names_en), dtype=object)
    return names[np.asarray(levels, dtype=np.int64)].tolist()


def speed_level(speed_kmh, road_class, standard: str = DEFAULT_STANDARD) -> np.ndarray:
    """Level 1..5 from speed bands per road class (0 where speed is NaN).

    Level 1 is faster than the first edge; a speed exactly on an edge belongs to the slower level
    (expressway 65 km/h is 基本畅通, 20 km/h is 严重拥堵).

    >>> speed_level([66.0, 65.0, 20.0, 31.0, float("nan")], ["expressway"] * 3 + ["secondary", "arterial"]).tolist()
    [1, 2, 5, 2, 0]
    """
    table = congestion_table(standard)
    v = np.asarray(speed_kmh, dtype=np.float64)
    rc = np.asarray(road_class, dtype=object)
    idx = np.full(rc.shape, -1, dtype=np.int64)
    for k, name in enumerate(table.road_classes):
        idx[rc == name] = k
    if np.any(idx < 0):
        bad = sorted(set(rc[idx < 0].tolist()))
        raise ValueError(f"unknown road class(es) {bad}; known: {', '.join(table.road_classes)}")
    edges = table.speed_edges_kmh[idx] if len(idx) else np.empty((0, table.speed_edges_kmh.shape[1]))
    level = edges.shape[1] + 1 - np.sum(v[:, None] > edges, axis=1)
    return np.where(np.isnan(v), 0, level)


def weighted_mean(values, weights) -> float:
    """Weighted mean over finite values with positive weight (NaN if none).

    >>> weighted_mean([2.0, 6.0, float("nan")], [3.0, 1.0, 5.0])
    3.0
    """
    x = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(w) & (w > 0)
    if not ok.any():
        return float("nan")
    return float(np.sum(x[ok] * w[ok]) / np.sum(w[ok]))


def space_mean_speed_kmh(speed_kmh, vkm) -> float:
    """Network speed = total vehicle-km / total vehicle-hours (the harmonic mean weighted by vehicle-km).

    Example: 100 veh-km at 60 km/h and 100 veh-km at 20 km/h: 200 / (100/60 + 100/20) = 30 km/h.

    >>> space_mean_speed_kmh([60.0, 20.0], [100.0, 100.0])
    30.0
    """
    v = np.asarray(speed_kmh, dtype=np.float64)
    w = np.asarray(vkm, dtype=np.float64)
    ok = np.isfinite(v) & (v > 0) & np.isfinite(w) & (w > 0)
    if not ok.any():
        return float("nan")
    with np.errstate(over="ignore"):  # a speed near 0 makes hours huge: the speed tends to 0, correctly
        hours = np.sum(w[ok] / v[ok])
        if hours == 0:  # vehicle-km so small that every w/v underflowed: the same ratio, rescaled
            scaled = w[ok] / np.max(w[ok])
            return float(np.sum(scaled) / np.sum(scaled / v[ok]))
        return float(np.sum(w[ok]) / hours)


def congested_share(length_km, level, min_level: int = 4) -> float:
    """Share of road length (km) whose level is >= ``min_level`` (levels of 0 = unknown are left out).

    Example: 2 km at level 5, 1 km at level 4, 5 km at level 1 -> (2 + 1) / 8 = 0.375.

    >>> congested_share([2.0, 1.0, 5.0, 3.0], [5, 4, 1, 0])
    0.375
    """
    km = np.asarray(length_km, dtype=np.float64)
    lv = np.asarray(level, dtype=np.int64)
    known = lv > 0
    total = km[known].sum()
    if total <= 0:
        return float("nan")
    return float(km[known & (lv >= min_level)].sum() / total)


def network_aggregations(min_level: int = 4) -> list:
    """Polars aggregations of segment rows into network figures (the vectorised form of
    :func:`weighted_mean`, :func:`space_mean_speed_kmh` and :func:`congested_share`).

    Expects columns ``tpi, tti, speed_kmh, vkm, length_km, congestion_level`` and yields ``tpi``
    and ``tti`` (vehicle-km weighted), ``mean_speed_kmh`` (space mean), ``congested_km_share``,
    ``vkm`` (sum) and ``road_km_observed`` (length with a known level).

    >>> import polars as pl
    >>> seg = pl.DataFrame({"tpi": [2.0, 6.0], "tti": [1.2, 1.8], "speed_kmh": [60.0, 20.0], "vkm": [100.0, 100.0],
    ...                     "length_km": [1.0, 3.0], "congestion_level": [2, 4]})
    >>> seg.select(network_aggregations()).row(0)
    (4.0, 1.5, 30.0, 0.75, 200.0, 4.0)
    """
    import polars as pl

    w = pl.col("vkm")

    def wmean(name: str) -> pl.Expr:
        ok = pl.col(name).is_not_null() & pl.col(name).is_not_nan() & w.is_not_null() & (w > 0)
        return ((pl.col(name) * w).filter(ok).sum() / w.filter(ok).sum()).alias(name)

    sp_ok = pl.col("speed_kmh").is_not_null() & (pl.col("speed_kmh") > 0) & w.is_not_null() & (w > 0)
    known = pl.col("congestion_level") > 0
    known_km = pl.col("length_km").filter(known).sum()
    return [
        wmean("tpi"),
        wmean("tti"),
        (w.filter(sp_ok).sum() / (w / pl.col("speed_kmh")).filter(sp_ok).sum()).alias("mean_speed_kmh"),
        pl.when(known_km > 0)
        .then(pl.col("length_km").filter(known & (pl.col("congestion_level") >= min_level)).sum() / known_km)
        .otherwise(None)
        .alias("congested_km_share"),
        w.fill_null(0.0).sum().alias("vkm"),
        known_km.alias("road_km_observed"),
    ]
