"""The inputs of the vital signs: the window frames' schemas and their conforming, the pollutant
columns, and columnar views of the city model (segments, cells, sensors, districts) built once per city.

Shared by the vectorised path (:mod:`brain.vitals.batch`, :mod:`brain.vitals.stack`) and the
one-window reference (:mod:`brain.vitals.reference`).

Example:
    >>> from brain.city import demo_city_path, load_city
    >>> refs = city_refs(load_city(demo_city_path()))
    >>> refs.districts.height > 0, "free_flow_kmh" in refs.segments.columns
    (True, True)
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from brain.city.model import SENSOR_FAMILY, City
from brain.vitals import grid, emergency, sensors

S, I64, F64 = pl.String, pl.Int64, pl.Float64
_WINDOW = {"window_start_ms": I64, "window_end_ms": I64}
_POLL = {"pm25_ugm3": F64, "pm10_ugm3": F64, "so2_ugm3": F64, "no2_ugm3": F64, "o3_ugm3": F64, "co_mgm3": F64}

#: Input frame schemas: name -> (column -> dtype, required columns).
INPUT_SCHEMAS: dict[str, tuple[dict[str, pl.DataType], tuple[str, ...]]] = {
    "traffic": ({"segment_id": S, **_WINDOW, "volume_veh": F64, "speed_kmh": F64, "occupancy_pct": F64, "n_readings": I64},
                ("segment_id", "window_end_ms", "volume_veh", "speed_kmh")),
    "probe": ({"segment_id": S, **_WINDOW, "travel_time_s": F64, "n_readings": I64}, ("segment_id", "window_end_ms", "travel_time_s")),
    "air_1h": ({"sensor_id": S, **_WINDOW, **_POLL}, ("sensor_id", "window_end_ms")),
    "air_24h": ({"sensor_id": S, **_WINDOW, **_POLL}, ("sensor_id", "window_end_ms")),
    "air_8h_o3": ({"sensor_id": S, "window_end_ms": I64, "o3_8h_ugm3": F64}, ("sensor_id", "window_end_ms", "o3_8h_ugm3")),
    "noise": ({"sensor_id": S, **_WINDOW, "laeq_db": F64, "lamax_db": F64}, ("sensor_id", "window_start_ms", "window_end_ms", "laeq_db")),
    "utility": ({"sensor_id": S, **_WINDOW, "pressure_kpa": F64, "flow_m3h": F64, "load_kw": F64}, ("sensor_id", "window_end_ms")),
    "outages": ({"outage_id": S, "utility": S, "cell_id": S, "customers": I64, "started_ms": I64, "ended_ms": I64},
                ("outage_id", "utility", "cell_id", "started_ms", "ended_ms")),
    "cases": ({"case_id": S, "category": S, "cell_id": S, "unit": S, "reported_ms": I64, "dispatched_ms": I64,
               "closed_ms": I64, "deadline_ms": I64, "status": S}, grid.CASE_COLUMNS),
    "incidents": ({"incident_id": S, "type": S, "severity": I64, "lon": F64, "lat": F64, "reported_ms": I64,
                   "dispatched_ms": I64, "on_scene_ms": I64, "closed_ms": I64, "status": S, "segment_id": S, "units": I64},
                  emergency.INCIDENT_COLUMNS + ("lon", "lat")),
    "sensor_last_seen": ({"sensor_id": S, "last_seen_ms": I64}, ("sensor_id", "last_seen_ms")),
}


POLLUTANTS = ("pm25", "pm10", "so2", "no2", "o3", "co")


def pollutant_unit(p: str) -> str:
    """The unit suffix of a pollutant's concentration columns (CO in mg/m³, the others in µg/m³).

    >>> [f"{p}_{pollutant_unit(p)}" for p in POLLUTANTS][-2:]
    ['o3_ugm3', 'co_mgm3']
    """
    return "mgm3" if p == "co" else "ugm3"



def conform_frame(frames: Mapping[str, pl.DataFrame], name: str) -> pl.DataFrame:
    """The frame ``name`` of ``frames`` in the schema of :data:`INPUT_SCHEMAS` (empty when missing); a
    missing required column or a column of the wrong type is a ``ValueError`` naming the frame.

    >>> probe = pl.DataFrame({"segment_id": ["S1"], "window_end_ms": [60_000], "travel_time_s": [48]})
    >>> conform_frame({"probe": probe}, "probe").schema["travel_time_s"]
    Float64
    >>> conform_frame({}, "probe").height
    0
    """
    schema, required = INPUT_SCHEMAS[name]
    frame = frames.get(name)
    if frame is None:
        return pl.DataFrame(schema=schema)
    if not isinstance(frame, pl.DataFrame):
        raise ValueError(f"window frame {name!r} must be a polars DataFrame, got {type(frame).__name__}")
    if frame.height == 0 and not frame.columns:
        return pl.DataFrame(schema=schema)
    have = frame.schema
    if all(have.get(col) == dtype for col, dtype in schema.items()):
        # Already in shape (the streaming core's frames): no per-column cast expressions to build.
        return frame if list(have) == list(schema) else frame.select(list(schema))
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"window frame {name!r} lacks column(s) {missing}")
    exprs = []
    for col, dtype in schema.items():
        if col not in frame.columns:
            exprs.append(pl.lit(None, dtype=dtype).alias(col))
        elif col.endswith("_ms") and isinstance(frame.schema[col], pl.Datetime):
            # A plain cast would give the datetime's own unit (often µs), not epoch ms.
            exprs.append(pl.col(col).dt.epoch("ms").alias(col))
        else:
            exprs.append(pl.col(col).cast(dtype))
    try:
        return frame.select(exprs)
    except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as exc:
        raise ValueError(f"window frame {name!r}: a column has the wrong type ({exc})") from None


class CityRefs:
    """Columnar views of the city model, built once per City.

    >>> from brain.city import demo_city_path, load_city
    >>> city = load_city(demo_city_path())
    >>> CityRefs(city).sensors.height == len(city.sensors)
    True
    """

    def __init__(self, city: City) -> None:
        segs = city.segments
        self.segments = pl.DataFrame({
            "segment_id": [s.id for s in segs], "district": [s.district for s in segs], "cell_id": [s.cell for s in segs],
            "road_class": [s.road_class for s in segs], "length_km": [s.length_m / 1000.0 for s in segs],
            "free_flow_kmh": [s.free_flow_kmh for s in segs], "lanes": [s.lanes for s in segs],
        }, schema={"segment_id": S, "district": S, "cell_id": S, "road_class": S, "length_km": F64, "free_flow_kmh": F64, "lanes": I64})
        cells = city.cells
        self.cells = pl.DataFrame({
            "cell_id": [c.id for c in cells], "cell_district": [c.district for c in cells], "noise_class": [c.noise_class for c in cells],
            "lon": [c.center[0] for c in cells], "lat": [c.center[1] for c in cells],
        }, schema={"cell_id": S, "cell_district": S, "noise_class": S, "lon": F64, "lat": F64})
        sens = city.sensors
        self.sensors = pl.DataFrame({
            "sensor_id": [s.id for s in sens], "type": [s.type for s in sens],
            "family": [SENSOR_FAMILY.get(s.type, "unknown") for s in sens], "district": [s.district for s in sens],
            "cell_id": [s.cell for s in sens], "unit": [s.unit for s in sens], "nominal": [s.nominal for s in sens],
            "metadata_complete": sensors.metadata_complete(city).tolist(),
        }, schema={"sensor_id": S, "type": S, "family": S, "district": S, "cell_id": S, "unit": S, "nominal": F64, "metadata_complete": pl.Boolean})
        self.districts = pl.DataFrame({"district": [d.id for d in city.districts], "name": [d.name for d in city.districts]},
                                      schema={"district": S, "name": S})


def city_refs(city: City) -> CityRefs:
    """The city's :class:`CityRefs`, built on first use and kept with the city.

    >>> from brain.city import demo_city_path, load_city
    >>> city = load_city(demo_city_path())
    >>> city_refs(city) is city_refs(city)
    True
    """
    cache = city.__dict__.setdefault("_indexes", {})
    if "vitals_refs" not in cache:
        cache["vitals_refs"] = CityRefs(city)
    return cache["vitals_refs"]



def nearest_cell(lon: np.ndarray, lat: np.ndarray, cells: pl.DataFrame) -> np.ndarray:
    """Index of the nearest cell centre (equirectangular distance; cities are small); -1 where the
    position is not finite.

    >>> import numpy as np, polars as pl
    >>> cells = pl.DataFrame({"lon": [116.0, 116.1], "lat": [39.9, 39.9]})
    >>> nearest_cell(np.array([116.09, np.nan]), np.array([39.9, 39.9]), cells).tolist()
    [1, -1]
    """
    if len(lon) == 0 or cells.height == 0:
        return np.full(len(lon), -1, dtype=np.int64)
    clon = cells["lon"].to_numpy()
    clat = cells["lat"].to_numpy()
    k = np.cos(np.radians(np.nanmean(clat)))
    out = np.empty(len(lon), dtype=np.int64)
    step = max(1, 2_000_000 // len(clon))  # bound the distance block to ~16 MB
    for i in range(0, len(lon), step):
        d2 = ((lon[i:i + step, None] - clon[None, :]) * k) ** 2 + (lat[i:i + step, None] - clat[None, :]) ** 2
        out[i:i + step] = np.argmin(np.nan_to_num(d2, nan=np.inf), axis=1)
    return np.where(np.isfinite(lon) & np.isfinite(lat), out, -1)
