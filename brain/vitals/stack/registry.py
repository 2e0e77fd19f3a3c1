"""The sensor registry's freshness per (tick, district, family) for :mod:`brain.vitals.batch`.

Example: registry shares from summed freshness counts (NaN where nothing is known):
    >>> import numpy as np
    >>> c = {"known": np.array([4, 0]), "fresh": np.array([3, 0]), "stale": np.array([1, 0]), "silent": np.array([0, 0]),
    ...      "never": np.array([0, 0]), "metadata_complete": np.array([2.0, 1.0]), "registered": np.array([4, 1])}
    >>> _shares(c)["fresh_share"].tolist()
    [0.75, nan]
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from brain import series
from brain.city.model import City
from brain.kernels.freshness import freshness_counts
from brain.vitals import sensors
from brain.vitals.config import VitalsConfig
from brain.vitals.inputs import CityRefs
from brain.vitals.stack.keys import F64, I64, T, _conformed, _frame, _i64, _ints, _nulled, _tick_index


class _SensorGroups:
    """The registry grouped by (district, family), built once per City: the group of each sensor."""

    def __init__(self, refs: CityRefs) -> None:
        reg = refs.sensors.with_row_index("_i")
        groups = reg.select("district", "family").unique().sort("district", "family", nulls_last=False)
        self.groups = groups.with_row_index("_g").with_columns(pl.col("_g").cast(I64))
        self.index = pl.DataFrame({"sensor_id": refs.sensors["sensor_id"], "_i": np.arange(refs.sensors.height, dtype=np.int64)})
        g = reg.join(self.groups, on=["district", "family"], how="left", nulls_equal=True).sort("_i")["_g"].to_numpy()
        self.group_of = g.astype(np.int64)
        n_groups = self.groups.height
        self.registered = np.bincount(self.group_of, minlength=n_groups).astype(np.int64)
        self.metadata = np.bincount(self.group_of, weights=refs.sensors["metadata_complete"].cast(F64).to_numpy(), minlength=n_groups)
        self.types = refs.sensors["type"]
        self._intervals: dict[tuple, np.ndarray] = {}
        self.last_lookup: tuple[pl.Series | None, np.ndarray] = (None, np.zeros(0, dtype=np.int64))
        position = {d: i for i, d in enumerate(refs.districts["district"].to_list())}
        self.group_area = np.asarray([position.get(d, -1) for d in self.groups["district"].to_list()], dtype=np.int64)

    def thresholds_ms(self, cfg: VitalsConfig) -> tuple[np.ndarray, np.ndarray]:
        """Each sensor's fresh and silent age limits in ms, as :func:`brain.vitals.sensors.freshness`
        computes them (factor x interval in ms)."""
        key = ("thresholds", cfg.fresh_factor, cfg.silent_factor, *sorted(cfg.expected_interval_s.items()))
        if key not in self._intervals:
            if not 0 < cfg.fresh_factor <= cfg.silent_factor:
                raise ValueError(f"need 0 < fresh_factor <= silent_factor, got {cfg.fresh_factor}, {cfg.silent_factor}")
            interval_ms = self.interval(cfg) * 1000.0
            if np.any(~(interval_ms > 0)):
                raise ValueError("expected reporting intervals must be > 0")
            self._intervals[key] = (cfg.fresh_factor * interval_ms, cfg.silent_factor * interval_ms)
        return self._intervals[key]

    def interval(self, cfg: VitalsConfig) -> np.ndarray:
        """Each sensor's expected reporting interval in seconds (3600 for a type the config does not name)."""
        key = tuple(sorted(cfg.expected_interval_s.items()))
        if key not in self._intervals:
            self._intervals[key] = self.types.replace_strict(cfg.expected_interval_s, default=3600.0, return_dtype=F64).to_numpy()
        return self._intervals[key]


def _registry_positions(ids: pl.Series, sg: _SensorGroups, tick_of: np.ndarray | None) -> np.ndarray:
    """The registry position of each sensor id (-1: not registered). A stacked last-seen table that
    repeats one block of ids per tick (as the pipeline builds it) is looked up once per block."""
    n = ids.len()
    block = n
    if tick_of is not None and n:
        change = np.flatnonzero(tick_of != tick_of[0])
        block = int(change[0]) if len(change) else n
    nulls = ids.null_count()  # (a null compares as neither equal nor unequal: no fast path then)
    if 0 < block < n and n % block == 0 and not nulls:
        first = ids.slice(0, block)
        if (ids == pl.concat([first] * (n // block))).all():
            return np.tile(_registry_positions(first, sg, None), n // block)
    last_ids, last_positions = sg.last_lookup
    if last_ids is not None and last_ids.len() == n and not nulls and (last_ids == ids).all():
        return last_positions  # the pipeline's registry block, as in the previous call
    k, ok = _ints(ids.to_frame("sensor_id").join(sg.index, on="sensor_id", how="left", maintain_order="left")["_i"])
    positions = np.where(ok, k, -1)
    if not nulls:
        sg.last_lookup = (ids, positions)
    return positions


def _sensor_groups(city: City, refs: CityRefs) -> _SensorGroups:
    cache = city.__dict__.setdefault("_indexes", {})
    if "vitals_batch_registry" not in cache:
        cache["vitals_batch_registry"] = _SensorGroups(refs)
    return cache["vitals_batch_registry"]


def _sensor_counts(frames, sg: _SensorGroups, tick_arr: np.ndarray, cfg: VitalsConfig) -> dict[str, np.ndarray]:
    """Per (tick, district, family) group, as (ticks x groups) arrays: the registry's freshness counts
    (``registered, fresh, stale, silent, never, known, metadata_complete``) of
    :func:`brain.vitals.sensors.freshness` as of each tick, counted in one kernel pass
    (:mod:`brain.kernels.freshness`)."""
    k, n_groups = len(tick_arr), sg.groups.height
    if "sensor_last_seen" not in frames:
        # No last-seen table at all: freshness is unknown (null shares), not "everything silent".
        counts = np.zeros((k, n_groups, 4), dtype=np.int64)
        known = counts[:, :, 0]
    else:
        raw = frames["sensor_last_seen"]
        seen = _conformed(frames, "sensor_last_seen")
        stacked = T in raw.columns and seen.height > 0
        tick_of = _ints(raw[T] if raw[T].dtype == I64 else raw[T].cast(I64))[0] if stacked else None
        cols = _registry_positions(seen["sensor_id"], sg, tick_of)
        vals = seen["last_seen_ms"].cast(F64).to_numpy()
        if stacked:
            rows = _tick_index(tick_arr, tick_of)
        else:  # one table for every tick
            rows, cols, vals = np.repeat(np.arange(k), len(cols)), np.tile(cols, k), np.tile(vals, k)
        fresh_ms, silent_ms = sg.thresholds_ms(cfg)
        counts = freshness_counts(rows.astype(np.int64), cols.astype(np.int64), np.ascontiguousarray(vals, dtype=np.float64), k,
                                  tick_arr.astype(np.float64), fresh_ms, silent_ms, sg.group_of, n_groups)
        known = counts.sum(axis=2)
    return {
        "registered": np.tile(sg.registered, (k, 1)), "fresh": counts[:, :, 0], "stale": counts[:, :, 1],
        "silent": counts[:, :, 2], "never": counts[:, :, 3], "known": known,
        "metadata_complete": np.tile(sg.metadata, (k, 1)),
    }


def _shares(c: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Registry shares of :func:`brain.vitals.reference._sensor_aggs` from summed freshness counts (NaN: null)."""
    known = c["known"]
    with np.errstate(invalid="ignore", divide="ignore"):
        def share(num: np.ndarray) -> np.ndarray:
            return np.where(known > 0, num / known, np.nan)

        return {
            "fresh_share": share(c["fresh"]), "stale_share": share(c["stale"]), "silent_share": share(c["silent"] + c["never"]),
            "reported_share": share(known - c["never"]), "metadata_complete_share": c["metadata_complete"] / c["registered"],
        }


def _sensor_health(counts: Mapping[str, np.ndarray], sg: "_SensorGroups", ticks: np.ndarray) -> pl.DataFrame:
    """The ``sensor_health`` table: per (tick, district, family), in that order."""
    k, n_groups = len(ticks), sg.groups.height
    g = np.tile(np.arange(n_groups), k)
    cols = {"district": series.take(sg.groups["district"], g), "family": series.take(sg.groups["family"], g)}
    cols.update({name: _i64(name, counts[name].reshape(-1)) for name in ("registered", *sensors.FRESHNESS_NAMES)})
    cols.update({name: _nulled(name, v.reshape(-1)) for name, v in _shares(counts).items()})
    cols["window_end_ms"] = cols[T] = _i64(T, np.repeat(ticks, n_groups))
    return _frame(cols)
