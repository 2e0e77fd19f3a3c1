"""Anomaly scores as a stream: a window operator that scores every series the city produces.

Each vital-sign tick, the per-window values of every segment (speed, occupancy, volume), utility
sensor (its measured value), noise monitor (LAeq) and, once per hour, air station (PM2.5, PM10)
go through one :class:`brain.anomaly.KeyedDetector` pass (numba, all keys at once, learning as it
scores). The output table ``anomaly`` has one row per scored series: key, metric, window end,
value, expected value, z, score in [0, 1] and the reason (spike, level shift, stuck, ...), which
the alert rules (rules/anomaly.yaml) and the live view read.

Example:
    >>> from brain.city import demo_city_path, load_city  # doctest: +SKIP
    >>> op = AnomalyOperator()  # doctest: +SKIP
    >>> CityPipeline(load_city(demo_city_path()), window_operators=[op])  # doctest: +SKIP
"""
from __future__ import annotations

import polars as pl

from brain.anomaly import KeyedDetector
from brain.pipeline import TickBatch

#: (table, key column, metrics) scored each tick.
SERIES = [
    ("segment_traffic", "segment_id", ["speed_kmh", "occupancy_pct", "volume_veh"]),
    ("utility_sensor", "sensor_id", ["value"]),
    ("noise_sensor", "sensor_id", ["laeq_db"]),
]
HOURLY_SERIES = [("air_1h", "sensor_id", ["pm25_ugm3", "pm10_ugm3"])]

SCHEMA = {"key": pl.Utf8, "metric": pl.Utf8, "window_end_ms": pl.Int64, "value": pl.Float64, "expected": pl.Float64,
          "z": pl.Float64, "score": pl.Float64, "reason": pl.Utf8}


class AnomalyOperator:
    """Window operator ``op(batch) -> {"anomaly": frame}`` with ``snapshot()``/``restore()``."""

    def __init__(self, n_keys_hint: int = 2048):
        self.detector = KeyedDetector(n_keys_hint)
        self._last_air_end: int | None = None

    def __call__(self, batch: TickBatch) -> dict[str, pl.DataFrame]:
        parts = []
        sources = [(batch.vitals.get(t), k, m) for t, k, m in SERIES]
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
                scored = self.detector.score_frame(frame.filter(pl.col(metric).is_not_null()), metric, key=key, ts="window_end_ms")
                parts.append(scored.rename({key: "key", "ts_ms": "window_end_ms"}).select(list(SCHEMA)))
        anomaly = pl.concat(parts) if parts else pl.DataFrame(schema=SCHEMA)
        return {"anomaly": anomaly}

    def snapshot(self) -> bytes:
        import pickle

        return pickle.dumps({"detector": self.detector.snapshot(), "last_air_end": self._last_air_end})

    def restore(self, blob: bytes) -> None:
        import pickle

        state = pickle.loads(blob)
        self.detector = KeyedDetector().restore(state["detector"])
        self._last_air_end = state["last_air_end"]


def maybe_anomaly_operator(city, config):
    """The anomaly operator for ``citybrain run`` (compiled kernels are warmed up here, at start)."""
    from brain.anomaly import warm_up

    warm_up()
    return AnomalyOperator(n_keys_hint=4 * len(city.sensors) + 4 * len(city.segments))
