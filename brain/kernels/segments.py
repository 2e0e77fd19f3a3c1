"""Per-segment traffic figures of many (tick, segment) rows in one pass.

``segment_figures`` is the numba kernel; ``segment_figures_reference`` is the plain-Python version the
tests compare it with. It evaluates, for each row (a segment at a tick, with its latest detector and
probe windows), what :mod:`brain.vitals.compute` derives with polars and numpy, with the same
floating-point operations in the same order (so the same bits):

* speed: the probe's (``length / (travel time / 3600)``) when the probe has a positive travel time,
  else the detector's when its window saw vehicles; the travel time likewise (``length * 3600 / speed``
  from a detector speed);
* TTI = travel time / free-flow time (``length * 3600 / free-flow speed``), TPI by numpy's ``interp``
  on the congestion table's points, the TPI level (1..5, 0 unknown) and the speed level from the
  segment's band edges (1..5, 0 unknown);
* vehicle-km: the detector volume (a probe-only segment: its lanes x the tick's observed volume per
  lane, the volumes summed per tick in row order with Kahan's compensation, as polars sums them) x length.

Rows come in tick order (``ti`` ascending). Inputs per row: ``ti``, ``k`` (segment), volume, detector
speed and probe travel time with where they are not null; per segment: length (km), free-flow speed
(km/h), lanes and speed band edges (segments x edges, descending). Outputs (per row): speed,
speed_ok, travel_time, tti, tpi (NaN: none), tpi_level, speed_level, source (0 probe, 1 detector, 2
none), vkm; and ``bad``: bit 1 set if a free-flow time is <= 0, bit 2 if a travel time is negative
(the caller raises). Division by zero gives inf or NaN, as in numpy.

Example: one segment of 0.8 km (60 km/h free flow, 2 lanes), a detector window of 120 vehicles at 30 km/h:
    >>> import numpy as np
    >>> f = segment_figures(np.array([0]), np.array([0]), np.array([120.0]), np.array([True]), np.array([30.0]),
    ...     np.array([True]), np.array([np.nan]), np.array([False]), np.array([0.8]), np.array([60.0]), np.array([2.0]),
    ...     np.array([[40.0, 30.0, 20.0, 15.0]]), 1, np.array([1.0, 1.2, 1.5, 1.8, 2.1, 4.0]),
    ...     np.array([0.0, 2.0, 4.0, 6.0, 8.0, 10.0]), np.array([0.0, 2.0, 4.0, 6.0, 8.0]))
    >>> speed, speed_ok, travel_time, tti, tpi, tpi_level, speed_level, source, vkm, bad = f
    >>> float(travel_time[0]), float(tti[0]), round(float(tpi[0]), 4), int(tpi_level[0]), int(speed_level[0]), float(vkm[0]), bad
    (96.0, 2.0, 7.3333, 4, 3, 96.0, 0)
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from brain.kernels.groupsum import group_sums, group_sums_reference

_MOST_NEGATIVE = -1.7976931348623157e308  # np.nan_to_num's stand-in for -inf


@njit(cache=True, error_model="numpy")
def _interp(x, xp, fp, slopes):  # pragma: no cover - compiled
    """numpy's ``interp`` of one finite value (its C code: the segment's slope from the left point,
    then from the right one if that gives NaN; ``slopes`` as it precomputes them)."""
    n = xp.shape[0]
    if x < xp[0]:
        return fp[0]
    if x > xp[n - 1]:
        return fp[n - 1]
    j = 0  # the last point <= x (tables are short: a scan)
    while j + 1 < n and xp[j + 1] <= x:
        j += 1
    if j == n - 1 or xp[j] == x:
        return fp[j]
    slope = slopes[j]
    r = slope * (x - xp[j]) + fp[j]
    if math.isnan(r):
        r = slope * (x - xp[j + 1]) + fp[j + 1]
        if math.isnan(r) and fp[j] == fp[j + 1]:
            r = fp[j]
    return r


@njit(cache=True, error_model="numpy")
def segment_figures(ti, k, vol, vol_ok, det_speed, det_speed_ok, probe_tt, probe_tt_ok, length_km, free_flow_kmh, lanes,
                    speed_edges, n_ticks, tti_points, tpi_points, level_tpi_min):  # pragma: no cover - compiled
    n = ti.shape[0]
    vol_sum = group_sums(vol, vol_ok, ti, n_ticks)[0]
    lanes_sum = np.zeros(n_ticks)
    for i in range(n):
        if vol_ok[i]:
            lanes_sum[ti[i]] += lanes[k[i]]
    speed = np.empty(n)
    speed_ok = np.zeros(n, dtype=np.bool_)
    travel_time = np.empty(n)
    tti = np.empty(n)
    tpi = np.empty(n)
    tpi_level = np.zeros(n, dtype=np.int64)
    speed_level = np.zeros(n, dtype=np.int64)
    source = np.empty(n, dtype=np.int64)
    vkm = np.empty(n)
    n_edges = speed_edges.shape[1]
    slopes = (tpi_points[1:] - tpi_points[:-1]) / (tti_points[1:] - tti_points[:-1])
    bad = 0
    for i in range(n):
        s = k[i]
        length = length_km[s]
        v = vol[i]
        # a detector window with no vehicle gives no speed; a zero probe time is no measurement
        # (polars orders NaN above every number: NaN > 0)
        det_ok = vol_ok[i] and (v > 0 or v != v) and det_speed_ok[i]
        t = probe_tt[i]
        tt_ok = probe_tt_ok[i] and (t > 0 or t != t)
        sp = length / (t * (1.0 / 3600.0)) if tt_ok else det_speed[i]
        ok = tt_ok or det_ok
        speed[i], speed_ok[i] = sp, ok
        free_flow_time = length * 3600.0 / free_flow_kmh[s]
        if free_flow_time <= 0:
            bad |= 1
        travel = t if tt_ok else length * 3600.0 / sp
        travel_time[i] = travel
        travel_or_nan = travel if ok else np.nan
        if travel_or_nan < 0:
            bad |= 2
        x = travel_or_nan / free_flow_time
        tti[i] = x
        if x != x:
            tpi[i] = np.nan
        else:
            y = _interp(1e300 if x == np.inf else (_MOST_NEGATIVE if x == -np.inf else x), tti_points, tpi_points, slopes)
            tpi[i] = y
            level = 0  # searchsorted(level_tpi_min, y, "right")
            while level < level_tpi_min.shape[0] and level_tpi_min[level] <= y:
                level += 1
            tpi_level[i] = level
        if ok and sp == sp:
            above = 0
            for j in range(n_edges):
                if sp > speed_edges[s, j]:
                    above += 1
            speed_level[i] = n_edges + 1 - above
        source[i] = 0 if tt_ok else (1 if det_ok else 2)
        tick = ti[i]
        per_lane = vol_sum[tick] / lanes_sum[tick] if lanes_sum[tick] > 0 else 1.0
        vkm[i] = (v if vol_ok[i] else lanes[s] * per_lane) * length
    return speed, speed_ok, travel_time, tti, tpi, tpi_level, speed_level, source, vkm, bad


def segment_figures_reference(ti, k, vol, vol_ok, det_speed, det_speed_ok, probe_tt, probe_tt_ok, length_km, free_flow_kmh, lanes,
                              speed_edges, n_ticks, tti_points, tpi_points, level_tpi_min):
    """Plain-Python twin of :func:`segment_figures` (numpy's own ``interp``, ``searchsorted`` and
    :func:`brain.kernels.groupsum.group_sums_reference`)."""
    n = len(ti)
    vol_sum = group_sums_reference(vol, vol_ok, ti, n_ticks)[0]
    lanes_sum = [0.0] * n_ticks
    for i in range(n):
        if vol_ok[i]:
            lanes_sum[ti[i]] += float(lanes[k[i]])
    out = {name: [] for name in ("speed", "speed_ok", "travel_time", "tti", "tpi", "tpi_level", "speed_level", "source", "vkm")}
    bad = 0
    for i in range(n):
        s, v, t = int(k[i]), float(vol[i]), float(probe_tt[i])
        length = float(length_km[s])
        det_ok = bool(vol_ok[i]) and (v > 0 or math.isnan(v)) and bool(det_speed_ok[i])
        tt_ok = bool(probe_tt_ok[i]) and (t > 0 or math.isnan(t))
        with np.errstate(all="ignore"):
            sp = float(np.float64(length) / (np.float64(t) * (1.0 / 3600.0))) if tt_ok else float(det_speed[i])
            ok = tt_ok or det_ok
            free_flow_time = float(np.float64(length) * 3600.0 / np.float64(free_flow_kmh[s]))
            bad |= 1 if free_flow_time <= 0 else 0
            travel = t if tt_ok else float(np.float64(length) * 3600.0 / np.float64(sp))
            travel_or_nan = travel if ok else math.nan
            bad |= 2 if travel_or_nan < 0 else 0
            x = float(np.float64(travel_or_nan) / np.float64(free_flow_time))
        if math.isnan(x):
            y, level = math.nan, 0
        else:
            y = float(np.interp(np.nan_to_num(np.float64(x), posinf=1e300), tti_points, tpi_points))
            level = int(np.searchsorted(level_tpi_min, y, side="right"))
        speed_level = 0
        if ok and not math.isnan(sp):
            speed_level = speed_edges.shape[1] + 1 - sum(1 for e in speed_edges[s] if sp > e)
        per_lane = vol_sum[ti[i]] / lanes_sum[ti[i]] if lanes_sum[ti[i]] > 0 else 1.0
        vkm = (v if vol_ok[i] else float(lanes[s]) * per_lane) * length
        for name, value in (("speed", sp), ("speed_ok", ok), ("travel_time", travel), ("tti", x), ("tpi", y), ("tpi_level", level),
                            ("speed_level", speed_level), ("source", 0 if tt_ok else 1 if det_ok else 2), ("vkm", vkm)):
            out[name].append(value)
    types = {"speed_ok": bool, "tpi_level": np.int64, "speed_level": np.int64, "source": np.int64}
    return (*(np.asarray(out[name], dtype=types.get(name, np.float64)) for name in out), bad)


def warm_up() -> None:
    """Compile the kernel on tiny arrays."""
    one, yes, x = np.zeros(1, dtype=np.int64), np.ones(1, dtype=bool), np.ones(1)
    segment_figures(one, one, x, yes, x, yes, x, yes, x, x, x, np.ones((1, 1)), 1, np.array([0.0, 1.0]), np.array([0.0, 1.0]), x)
