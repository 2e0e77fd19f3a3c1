"""Peer references for traffic detectors: what the rest of the city sees where one detector looks.

A detector that drifts (a loop losing sensitivity, a radar knocked off its aim) reports a bias
that grows slowly for hours. On its own series that is hard to tell from the city changing (the
evening getting quieter, a long incident); against a *peer* that measures the same road it is
not, because the city's changes move both and cancel in their ratio. The peer of a detector is,
fixed per detector from the city model:

* the segment's probe speed (floating-car travel time -> ``3.6 * length_m / travel_time_s``):
  another technology, with no calibration of its own to drift;
* on a segment without probes, the median of the segment's *other* detectors (with only one
  other, a drift of either shows on both: maintenance then checks the pair).

:class:`DetectorPeers` adds that reference as a column to the per-window detector table; the
detector (:class:`~brain.anomaly.KeyedDetector` with ``peer=``) tests for a ramp in the log-ratio.

Example:
    >>> import polars as pl
    >>> from brain.city import demo_city_path, load_city
    >>> peers = DetectorPeers(load_city(demo_city_path()))
    >>> det = pl.DataFrame({"sensor_id": ["LP-QT-03S"], "window_end_ms": [300_000], "speed_kmh": [40.0]})
    >>> probe = pl.DataFrame({"segment_id": ["QT-03S"], "window_end_ms": [300_000], "travel_time_s": [60.0]})
    >>> out = peers.with_peer(det, probe)
    >>> round(out["peer_speed_kmh"][0] * 60.0 / 3.6, 1) == round(peers.segment_length_m["QT-03S"], 1)
    True
"""
from __future__ import annotations

import polars as pl

from brain.city.model import City
from brain.schemas import KIND_SENSOR_TYPES

PEER_COLUMN = "peer_speed_kmh"


class DetectorPeers:
    """Per-window peer speed for each traffic detector of ``city`` (see the module docstring).

    Parameters:
        city: the city model (sensors with their segments, segments with their lengths).
    """

    def __init__(self, city: City) -> None:
        if not isinstance(city, City):
            raise ValueError(f"city must be a brain.city.model.City, got {type(city).__name__}")
        self.segment_length_m = {s.id: float(s.length_m) for s in city.segments}
        detectors = [s for s in city.sensors if s.type in KIND_SENSOR_TYPES["traffic"] and s.segment]
        probed = {s.segment for s in city.sensors if s.type in KIND_SENSOR_TYPES["probe"] and s.segment}
        per_segment: dict[str, int] = {}
        for s in detectors:
            per_segment[s.segment] = per_segment.get(s.segment, 0) + 1
        self.segment_of = {s.id: s.segment for s in detectors}
        #: how each detector is referenced: "probe", "detectors" or absent (no peer)
        self.kind = {s.id: "probe" for s in detectors if s.segment in probed and s.segment in self.segment_length_m}
        self.kind.update({s.id: "detectors" for s in detectors if s.id not in self.kind and per_segment[s.segment] > 1})
        self._map = pl.DataFrame({
            "sensor_id": list(self.segment_of), "_segment": list(self.segment_of.values()),
            "_kind": [self.kind.get(s) for s in self.segment_of],
        }, schema={"sensor_id": pl.String, "_segment": pl.String, "_kind": pl.String})
        self._length = pl.DataFrame({"_segment": list(self.segment_length_m), "_length_m": list(self.segment_length_m.values())},
                                    schema={"_segment": pl.String, "_length_m": pl.Float64})

    def with_peer(self, detectors: pl.DataFrame, probe: pl.DataFrame | None, speed: str = "speed_kmh",
                  ts: str = "window_end_ms") -> pl.DataFrame:
        """``detectors`` (``sensor_id``, ``ts``, ``speed``) with a ``peer_speed_kmh`` column (null: no peer).

        ``probe``: the per-window segment probe table (``segment_id``, ``ts``, ``travel_time_s``), or None.
        Rows keep their order.
        """
        for col in ("sensor_id", ts, speed):
            if col not in detectors.columns:
                raise ValueError(f"column {col!r} not in the detector frame (columns: {', '.join(detectors.columns)})")
        out = detectors.with_row_index("_row").join(self._map, on="sensor_id", how="left")
        by_probe = None
        if probe is not None and probe.height and {"segment_id", ts, "travel_time_s"} <= set(probe.columns):
            by_probe = (
                probe.filter(pl.col("travel_time_s") > 0)
                .group_by(pl.col("segment_id").alias("_segment"), ts)
                .agg(pl.col("travel_time_s").mean())
                .join(self._length, on="_segment", how="inner")
                .select("_segment", ts, (3.6 * pl.col("_length_m") / pl.col("travel_time_s")).alias("_probe_kmh"))
            )
        if by_probe is not None:
            out = out.join(by_probe, on=["_segment", ts], how="left")
        else:
            out = out.with_columns(pl.lit(None, pl.Float64).alias("_probe_kmh"))
        others = (
            out.filter(pl.col("_kind") == "detectors").select("_row", "sensor_id", "_segment", ts)
            .join(out.select(pl.col("sensor_id").alias("_other"), "_segment", ts, pl.col(speed).alias("_other_kmh")),
                  on=["_segment", ts], how="inner")
            .filter(pl.col("_other") != pl.col("sensor_id"))
            .group_by("_row").agg(pl.col("_other_kmh").median().alias("_others_kmh"))
        )
        out = out.join(others, on="_row", how="left").sort("_row")
        peer = (pl.when(pl.col("_kind") == "probe").then(pl.col("_probe_kmh"))
                .when(pl.col("_kind") == "detectors").then(pl.col("_others_kmh"))
                .otherwise(None).cast(pl.Float64).alias(PEER_COLUMN))
        return out.with_columns(peer).drop("_row", "_segment", "_kind", "_probe_kmh", "_others_kmh")
