"""Anomaly scores as a stream: a window operator that scores every series the city produces.

Each vital-sign tick, the per-window values of every segment (speed, occupancy, volume), utility
sensor (its measured value), noise monitor (LAeq) and, once per hour, air station (PM2.5, PM10)
go through one :class:`brain.anomaly.KeyedDetector` pass (numba, all keys at once, learning as it
scores). The output table ``anomaly`` has one row per scored series: key, metric, window end,
value, expected value, z, score in [0, 1] (the confidence that an anomaly starts there: one alarm
per episode), the reason (spike, level shift, stuck, ...) and ``ongoing`` (the confidence that the
window is part of an anomaly, news or not), which the alert rules (rules/anomaly.yaml: a condition
held for a duration reads ``ongoing``) and the live view read. Given the city, each traffic
detector's own speed is scored with a peer reference (its segment's probe speed,
:class:`brain.anomaly.DetectorPeers`), so that its drift statistic looks for a slow ramp against
what the rest of the city sees on that road rather than for the city changing.

Example (an hour of the simulated demo city):
    >>> from brain.city import demo_city_path, load_city
    >>> from brain.pipeline import CityPipeline
    >>> from streams.sim import Simulator
    >>> city = load_city(demo_city_path())
    >>> pipe = CityPipeline(city, window_operators=[AnomalyOperator(city=city)])
    >>> sim = Simulator(city, seed=2)
    >>> windows = [w for b in sim.batches(sim.start_ms + 3_600_000, batch_s=3600) for w in pipe.ingest_frames(b.frames).windows]
    >>> scores = windows[-1].vitals["anomaly"]
    >>> sorted(scores["metric"].unique().to_list())[:3], bool(scores["score"].is_between(0, 1).all())
    (['detector_speed_kmh', 'laeq_db', 'occupancy_pct'], True)
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import polars as pl

from brain import checkpoint, series
from brain.anomaly import DetectorPeers, KeyedDetector
from brain.anomaly.delta import apply_delta, delta_nbytes, diff_arrays
from brain.anomaly.snapshot import SnapshotFormatError, pack_arrays, unpack_arrays
from brain.anomaly.peers import PEER_COLUMN
from brain.pipeline import TickBatch

#: (table, key column, metrics) scored each tick.
SERIES = [
    ("segment_traffic", "segment_id", ["speed_kmh", "occupancy_pct", "volume_veh"]),
    ("utility_sensor", "sensor_id", ["value"]),
    ("noise_sensor", "sensor_id", ["laeq_db"]),
    ("detector_sensor", "sensor_id", ["detector_speed_kmh"]),
]
HOURLY_SERIES = [("air_1h", "sensor_id", ["pm25_ugm3", "pm10_ugm3"])]

_FORMAT = "AnomalyOperator/2"
_DELTA_FORMAT = "AnomalyOperator/delta/1"  # what changed since a base file (streams.anomaly_store)
SCHEMA = {"key": pl.Utf8, "metric": pl.Utf8, "window_end_ms": pl.Int64, "value": pl.Float64, "expected": pl.Float64,
          "z": pl.Float64, "score": pl.Float64, "reason": pl.Utf8, "ongoing": pl.Float64}


class AnomalyOperator:
    """Window operator ``op(batch) -> {"anomaly": frame}`` with ``snapshot()``/``restore()``.

    ``city``: when given, traffic detectors are scored against their peers (see the module docstring).
    With :meth:`keep_bases_in` a snapshot is a delta against a base file (see :meth:`snapshot`).
    """

    def __init__(self, n_keys_hint: int = 2048, city=None):
        self.detector = KeyedDetector(n_keys_hint)
        self.peers = DetectorPeers(city) if city is not None else None
        self._last_air_end: int | None = None
        self._store = None  # streams.anomaly_store.BaseStore, when snapshots are deltas
        self._rebase_share = 0.5
        self._base: _Base | None = None
        self._scored = 0  # calls that may have changed the state (a snapshot taken since none: the same bytes)
        self._last: tuple[int, bytes] | None = None

    def keep_bases_in(self, store, rebase_share: float = 0.5) -> "AnomalyOperator":
        """Snapshots as deltas against whole states kept in ``store`` (a :class:`streams.anomaly_store.BaseStore`):
        a new base is written when the delta would exceed ``rebase_share`` of the whole state."""
        self._store, self._rebase_share = store, float(rebase_share)
        self._base, self._last = None, None
        return self

    def __call__(self, batch: TickBatch) -> dict[str, pl.DataFrame]:
        self._scored += 1
        parts = []
        sources = [(batch.vitals.get(t), k, m) for t, k, m in SERIES]
        detectors = batch.vitals.get("detector_sensor")
        if detectors is not None:  # one detector's own speed, named apart from the segment's
            if self.peers is not None and detectors.height:
                detectors = self.peers.with_peer(detectors, batch.inputs.get("probe"))
            sources = [(detectors.rename({"speed_kmh": "detector_speed_kmh"}), k, m) if t == "detector_sensor" else (f, k, m)
                       for (f, k, m), (t, _, _) in zip(sources, SERIES)]
        air = batch.inputs.get("air_1h")
        if air is not None and air.height:
            # One score per station-hour: the same hour is repeated in every tick until the next one closes.
            new_hours = air.unique(["sensor_id", "window_end_ms"], keep="first", maintain_order=True)
            if self._last_air_end is not None:
                new_hours = new_hours.filter(pl.col("window_end_ms") > self._last_air_end)
            if new_hours.height:
                self._last_air_end = int(new_hours["window_end_ms"].max())
                sources += [(new_hours, k, m) for _, k, m in HOURLY_SERIES]
        for frame, key, metrics in sources:
            if frame is None or frame.height == 0 or key not in frame.columns:
                continue
            # Each key's points must reach the detector in time order.
            frame = frame.sort("window_end_ms", maintain_order=True)
            for metric in metrics:
                if metric not in frame.columns:
                    continue
                peer = PEER_COLUMN if PEER_COLUMN in frame.columns else None
                present = series.not_null(frame[metric])
                rows = frame if present.all() else series.take_rows(frame, np.flatnonzero(present))
                scored = self.detector.score_learn_many(rows, metric, key=key, ts="window_end_ms", peer=peer)
                # the anomaly table's columns, renamed and in order (no select query per metric)
                named = {"key": key, "window_end_ms": "ts_ms"}
                parts.append(series.frame([scored.get_column(named.get(c, c)).alias(c) for c in SCHEMA]))
        anomaly = pl.concat(parts) if parts else pl.DataFrame(schema=SCHEMA)
        return {"anomaly": anomaly}

    def snapshot(self) -> bytes:
        """Key names, the detector's compact columnar state and the last air hour, packed with one
        copy of the arrays (:mod:`brain.anomaly.snapshot`): a 50k-sensor city's anomaly state is ~170 MB.

        With a base store (:meth:`keep_bases_in`), only what changed since the last base: the keys
        added since and the elements that differ (:func:`brain.anomaly.delta.diff_arrays`), with the
        base's generation and SHA-256; a snapshot with nothing scored since the previous one is the
        previous bytes. The whole state is written to the store (first) when there is no base yet
        or the delta would be larger than ``rebase_share`` of it."""
        if self._store is not None and self._last is not None and self._last[0] == self._scored:
            return self._last[1]
        names, arrays = self.detector.state()
        fields = {"names": names, "last_air_end": self._last_air_end}
        if self._store is None:
            return pack_arrays(_FORMAT, fields, arrays)
        base, delta = self._base, None
        if base is not None and len(names) >= base.n_names and (not base.n_names or names[base.n_names - 1] == base.last_name):
            delta = diff_arrays(base.arrays, arrays)
            if delta_nbytes(delta) > self._rebase_share * sum(a.nbytes for a in arrays.values()):
                delta = None
        if delta is None:  # a new base, written before any checkpoint refers to it
            generation, digest = self._store.write(pack_arrays(_FORMAT, fields, arrays))
            base = self._base = _Base(generation, digest, len(names), names[-1] if names else None,
                                      {k: np.array(v, copy=True) for k, v in arrays.items()})
            delta = {}
        blob = pack_arrays(_DELTA_FORMAT, {"base": base.generation, "digest": base.digest, "new_names": names[base.n_names:],
                                           "last_air_end": self._last_air_end}, delta)
        self._last = (self._scored, blob)
        return blob

    def restore(self, blob: bytes) -> None:
        self._last = None
        try:
            fields, delta = unpack_arrays(_DELTA_FORMAT, blob)
        except SnapshotFormatError:
            self._restore_whole(blob)
            self._base = None  # the next snapshot writes a base
            return
        if self._store is None:
            raise ValueError("anomaly operator snapshot is a delta against a base file, and no base directory is set")
        generation, digest, new_names = fields.get("base"), fields.get("digest"), fields.get("new_names")
        if not isinstance(generation, int) or not isinstance(digest, str) or not isinstance(new_names, list):
            raise ValueError("anomaly operator snapshot has another format (delta fields)")
        try:
            base_fields, base_arrays = unpack_arrays(_FORMAT, self._store.read(generation, digest))
        except SnapshotFormatError as exc:
            raise ValueError(f"anomaly base {generation} has another format ({exc})") from None
        names = list(base_fields.get("names") or [])
        self.detector = KeyedDetector().restore_state(names + new_names, apply_delta(base_arrays, delta))
        self._base = _Base(generation, digest, len(names), names[-1] if names else None, base_arrays)
        last = fields.get("last_air_end")
        self._last_air_end = int(last) if isinstance(last, int) else None
        self._last = (self._scored, bytes(blob))  # the state is this snapshot's until something is scored

    def _restore_whole(self, blob: bytes) -> None:
        if bytes(blob[: len(checkpoint.MAGIC)]) == checkpoint.MAGIC:  # the format before compact snapshots
            state = checkpoint.decode(blob)
            if not isinstance(state, dict) or not isinstance(state.get("detector"), bytes):
                raise ValueError("anomaly operator snapshot has another format")
            self.detector = KeyedDetector().restore(state["detector"])
            self._last_air_end = state["last_air_end"]
            return
        try:
            fields, arrays = unpack_arrays(_FORMAT, blob)
        except SnapshotFormatError as exc:
            raise ValueError(f"anomaly operator snapshot has another format ({exc})") from None
        self.detector = KeyedDetector().restore_state(fields.get("names"), arrays)
        last = fields.get("last_air_end")
        self._last_air_end = int(last) if isinstance(last, int) else None


class _Base(NamedTuple):
    """The base a delta snapshot is taken against: its file, how many key names it had (the last
    one, to tell a detector that restarted its keys), and its arrays (a copy, for the comparison)."""

    generation: int
    digest: str
    n_names: int
    last_name: str | None
    arrays: dict


def maybe_anomaly_operator(city, config):
    """The anomaly operator for ``citybrain run`` (compiled kernels are warmed up here, at start)."""
    from brain.anomaly import warm_up

    warm_up()
    return AnomalyOperator(n_keys_hint=4 * len(city.sensors) + 4 * len(city.segments), city=city)


# --- learned models (onnxruntime) -----------------------------------------------------------------

MODEL_SCHEMA = {"model": pl.Utf8, "version": pl.Utf8, "key": pl.Utf8, "window_end_ms": pl.Int64, "score": pl.Float64,
                "threshold": pl.Float64, "flagged": pl.Boolean}


def district_features(batch: TickBatch, tz: str) -> pl.DataFrame:
    """One row per district per full hour: the district model's features, from the hour's vital signs.

    ``speed_kmh_mean`` (district mean speed), ``pm25_ugm3_mean`` (mean of its stations' hourly PM2.5),
    ``cases_per_h`` (new grid cases in the hour), ``pressure_kpa_mean`` / ``load_kw_mean`` (mean of its
    kPa / kW utility sensors), ``hour_sin``/``hour_cos`` of the local hour.
    """
    district = batch.vitals.get("district")
    if district is None or district.height == 0:
        return pl.DataFrame()
    hourly = district.filter(pl.col("window_end_ms") % 3_600_000 == 0)
    if hourly.height == 0:
        return pl.DataFrame()
    speed = district.with_columns((pl.col("window_end_ms") + 3_600_000 - 1) // 3_600_000 * 3_600_000).group_by(
        "district", "window_end_ms").agg(pl.col("mean_speed_kmh").mean().alias("speed_kmh_mean"))
    air = batch.vitals.get("air_station", pl.DataFrame(schema={"district": pl.Utf8, "window_end_ms": pl.Int64, "pm25_1h_ugm3": pl.Float64}))
    pm = air.group_by("district", "window_end_ms").agg(pl.col("pm25_1h_ugm3").mean().alias("pm25_ugm3_mean"))
    util = batch.vitals.get("utility_sensor", pl.DataFrame(schema={"district": pl.Utf8, "window_end_ms": pl.Int64, "unit": pl.Utf8, "value": pl.Float64}))
    util_h = util.with_columns((pl.col("window_end_ms") + 3_600_000 - 1) // 3_600_000 * 3_600_000).group_by("district", "window_end_ms").agg(
        pl.col("value").filter(pl.col("unit") == "kPa").mean().alias("pressure_kpa_mean"),
        pl.col("value").filter(pl.col("unit") == "kW").mean().alias("load_kw_mean"),
    )
    local_hour = pl.from_epoch(pl.col("window_end_ms"), time_unit="ms").dt.convert_time_zone(tz).dt.hour().cast(pl.Float64)
    out = (
        hourly.select("district", "window_end_ms", pl.col("cases_new_last_hour").cast(pl.Float64).alias("cases_per_h"))
        .join(speed, on=["district", "window_end_ms"], how="left")
        .join(pm, on=["district", "window_end_ms"], how="left")
        .join(util_h, on=["district", "window_end_ms"], how="left")
        .with_columns((2 * math.pi * local_hour / 24).sin().alias("hour_sin"), (2 * math.pi * local_hour / 24).cos().alias("hour_cos"))
    )
    return out


#: Feature builders per model name: the engine can only score models whose features it can build.
FEATURE_BUILDERS = {"district_iforest": ("district", district_features)}


class ModelOperator:
    """Scores the learned ONNX models each hour (onnxruntime, one batch per model).

    Models are loaded by name and version at start; a missing, altered or mismatched model is
    reported (``errors``) and skipped: the engine keeps running on the numba detectors.

    Example:
        >>> from brain.city import demo_city_path, load_city
        >>> op = ModelOperator(load_city(demo_city_path()), [("district_iforest", "1"), ("nosuch", None)])
        >>> list(op.models), len(op.errors)
        (['district_iforest'], 1)
    """

    def __init__(self, city, specs: list[tuple[str, str | None]], directory=None):
        from brain.anomaly import load_models

        if directory is None:
            import models.artifacts

            directory = models.artifacts.DIR
        self.tz = city.timezone
        loaded, self.errors = load_models(specs, directory)
        self.models = {}
        for name, model in loaded.items():
            if name not in FEATURE_BUILDERS:
                self.errors.append(f"model {name}: the engine has no feature builder for it (known: {', '.join(FEATURE_BUILDERS)})")
            else:
                self.models[name] = model

    def __call__(self, batch: TickBatch) -> dict[str, pl.DataFrame]:
        parts = []
        for name, model in self.models.items():
            key_col, build = FEATURE_BUILDERS[name]
            feats = build(batch, self.tz)
            if feats.height == 0:
                continue
            missing = [f for f in model.features if f not in feats.columns]
            if missing:
                continue
            X = feats.select(model.features).fill_null(strategy="mean").fill_null(0.0).to_numpy().astype("float32")
            score = model.score(X)
            parts.append(pl.DataFrame({
                "model": [name] * feats.height, "version": [model.version] * feats.height, "key": feats[key_col],
                "window_end_ms": feats["window_end_ms"], "score": score, "threshold": [model.threshold] * feats.height,
                "flagged": score >= model.threshold,
            }, schema=MODEL_SCHEMA))
        return {"model_scores": pl.concat(parts) if parts else pl.DataFrame(schema=MODEL_SCHEMA)}


def parse_model_specs(text: str | None) -> list[tuple[str, str | None]]:
    """'district_iforest:1,segment_iforest' -> [('district_iforest', '1'), ('segment_iforest', None)]."""
    specs = []
    for item in (text or "").split(","):
        item = item.strip()
        if item:
            name, _, version = item.partition(":")
            specs.append((name.strip(), version.strip() or None))
    return specs
