"""The gate: every decoded record is checked against its schema and the sensor registry.

Checks, in order (the first failure is the record's reason): a required field missing, a
value outside the allowed set (status, utility), a reading with no measured value at all, a
value outside the physically possible range, an unknown terminal (一终端一标识: quarantined,
never guessed), a terminal of a type that may not send this kind, a primary value outside the
sensor's registered valid range, and unknown cells or segments named by an event.

All checks are polars expressions over the whole batch.

Example:
    >>> import polars as pl
    >>> from brain.city.model import Sensor
    >>> reg = SensorRegistry([Sensor(id="L1", type="loop", lon=120.1, lat=30.2, district="D1", cell="C1",
    ...                              owner="traffic police", unit="km/h", valid_min=0, valid_max=150, segment="S1")])
    >>> v = Validator(reg)
    >>> frame = pl.DataFrame({"sensor_id": ["L1", "L1", "X9"], "ts_ms": [0, 0, 0], "volume_veh": [5.0, -1.0, 5.0],
    ...                       "occupancy_pct": [3.0, 3.0, 3.0], "speed_kmh": [40.0, 40.0, 40.0], "interval_s": [60.0] * 3})
    >>> good, bad = v.validate("traffic", frame)
    >>> good.height, bad["reason_code"].to_list()
    (1, ['out_of_range', 'unknown_sensor'])
"""
from __future__ import annotations

import typing

import msgspec
import numpy as np
import polars as pl

from brain.city.model import City, Sensor
from brain.ingest import DEAD_SCHEMA, KIND_DTYPES
from brain.schemas import KIND_SENSOR_TYPES, PHYSICAL_RANGE, PRIMARY_FIELD, RECORD_TYPES


def _required(kind: str) -> list[str]:
    return [f.name for f in msgspec.structs.fields(RECORD_TYPES[kind]) if f.required]


def _allowed_values(kind: str) -> dict[str, list[str]]:
    out = {}
    for name, hint in typing.get_type_hints(RECORD_TYPES[kind]).items():
        if typing.get_origin(hint) is typing.Literal:
            out[name] = list(typing.get_args(hint))
    return out


#: Kinds that are measurements: at least one of these value fields must be present.
MEASURED_FIELDS: dict[str, list[str]] = {
    "air": ["pm25_ugm3", "pm10_ugm3", "so2_ugm3", "no2_ugm3", "o3_ugm3", "co_mgm3"],
    "water_quality": ["ph", "turbidity_ntu", "dissolved_oxygen_mgl"],
    "weather": ["temp_c", "humidity_pct", "wind_ms", "rain_mm"],
    "utility": ["pressure_kpa", "flow_m3h", "load_kw"],
}

#: Event kinds whose own fields name places that must exist in the city.
PLACE_FIELDS: dict[str, dict[str, str]] = {
    "grid_case": {"cell_id": "cell"},
    "outage": {"cell_id": "cell"},
    "incident": {"segment_id": "segment"},
}

#: Sensor quantities by unit, for utility sensors whose primary field depends on what they measure.
UNIT_FIELD = {"kPa": "pressure_kpa", "m3/h": "flow_m3h", "kW": "load_kw"}


def dead_letters(kind: str, frame: pl.DataFrame, code: pl.Expr | str, reason: pl.Expr) -> pl.DataFrame:
    """Rows of one kind as dead letters: ``reason_code``, ``reason`` and the record as JSON in ``raw``.

    Example:
        >>> f = pl.DataFrame({"sensor_id": ["X"], "ts_ms": [5], "laeq_db": [55.0]})
        >>> dead_letters("noise", f, "unknown_sensor", pl.lit("unknown sensor 'X'")).row(0)
        ('unknown_sensor', "unknown sensor 'X'", '{"kind":"noise","sensor_id":"X","ts_ms":5,"laeq_db":55.0}')
    """
    columns = [c for c in KIND_DTYPES[kind] if c in frame.columns]
    return frame.select(
        (pl.lit(code) if isinstance(code, str) else code).alias("reason_code"),
        reason.alias("reason"),
        pl.struct([pl.lit(kind).alias("kind")] + [pl.col(c) for c in columns]).struct.json_encode().alias("raw"),
    )


class SensorRegistry:
    """The sensor registry as columns: id -> dense index, type, place, valid range.

    Example:
        >>> reg = SensorRegistry([Sensor(id="A1", type="air", lon=0, lat=0, district="D", cell="C", owner="EPB",
        ...                              unit="ug/m3", valid_min=0, valid_max=1000)])
        >>> reg.index_of(["A1", "nope"]).tolist()
        [0, -1]
    """

    def __init__(self, sensors: list[Sensor]):
        self.sensors = list(sensors)
        self.ids = [s.id for s in self.sensors]
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("sensor ids must be unique")
        self._pos = {sid: i for i, sid in enumerate(self.ids)}
        self.frame = pl.DataFrame(
            {
                "sensor_id": self.ids,
                "sensor_idx": np.arange(len(self.ids), dtype=np.int32),
                "sensor_type": [s.type for s in self.sensors],
                "valid_min": [float(s.valid_min) for s in self.sensors],
                "valid_max": [float(s.valid_max) for s in self.sensors],
                "sensor_unit": [s.unit for s in self.sensors],
            },
            schema={
                "sensor_id": pl.Utf8,
                "sensor_idx": pl.Int32,
                "sensor_type": pl.Utf8,
                "valid_min": pl.Float64,
                "valid_max": pl.Float64,
                "sensor_unit": pl.Utf8,
            },
        )

    def __len__(self) -> int:
        return len(self.ids)

    def index_of(self, ids: list[str]) -> np.ndarray:
        return np.array([self._pos.get(i, -1) for i in ids], dtype=np.int64)

    @classmethod
    def from_city(cls, city: City) -> "SensorRegistry":
        return cls(city.sensors)


class Validator:
    """Checks per-kind frames; returns (applied rows + ``sensor_idx``, dead letters with reasons).

    ``cells`` and ``segments`` are the known place ids for events that name them (None: not checked).
    """

    def __init__(self, registry: SensorRegistry, cells: set[str] | None = None, segments: set[str] | None = None):
        self.registry = registry
        self.places = {"cell": cells, "segment": segments}
        # Per kind: the checks, and for those that can only fail on nulls (missing fields), which
        # columns and whether any or all of them must be null.
        self._checks: dict[str, list[tuple[pl.Expr, str, pl.Expr]]] = {}
        self._null_only: dict[str, dict[int, tuple[tuple[str, ...], bool]]] = {}
        for kind in KIND_DTYPES:
            self._checks[kind], self._null_only[kind] = self._build_checks(kind)

    @classmethod
    def from_city(cls, city: City) -> "Validator":
        return cls(SensorRegistry.from_city(city), {c.id for c in city.cells}, {s.id for s in city.segments})

    def _build_checks(
        self, kind: str
    ) -> tuple[list[tuple[pl.Expr, str, pl.Expr]], dict[int, tuple[tuple[str, ...], bool]]]:
        """(failed?, reason_code, reason text) in priority order, and the null-only checks by index."""
        checks: list[tuple[pl.Expr, str, pl.Expr]] = []
        null_only: dict[int, tuple[tuple[str, ...], bool]] = {}
        for name in _required(kind):
            null_only[len(checks)] = ((name,), False)
            checks.append((pl.col(name).is_null(), "missing_field", pl.lit(f"missing field {name}")))
        for name, allowed in _allowed_values(kind).items():
            checks.append(
                (
                    pl.col(name).is_not_null() & ~pl.col(name).is_in(allowed),
                    "bad_value",
                    pl.format(f"{name} '{{}}' not one of {', '.join(allowed)}", pl.col(name)),
                )
            )
        measured = MEASURED_FIELDS.get(kind)
        if measured:
            null_only[len(checks)] = (tuple(measured), True)
            checks.append(
                (
                    pl.all_horizontal([pl.col(m).is_null() for m in measured]),
                    "missing_field",
                    pl.lit(f"no measured value (expected one of {', '.join(measured)})"),
                )
            )
        for name in KIND_DTYPES[kind]:
            if name in PHYSICAL_RANGE:
                lo, hi = PHYSICAL_RANGE[name]
                checks.append(
                    (
                        (pl.col(name) < lo) | (pl.col(name) > hi) | pl.col(name).is_nan().fill_null(False)
                        if KIND_DTYPES[kind][name] == pl.Float64
                        else (pl.col(name) < lo) | (pl.col(name) > hi),
                        "out_of_range",
                        pl.format(f"{name}={{}} outside physical range [{lo:g}, {hi:g}]", pl.col(name)),
                    )
                )
        checks.append(
            (
                pl.col("sensor_idx").is_null(),
                "unknown_sensor",
                pl.format("unknown sensor '{}' (not in the registry: quarantined)", pl.col("sensor_id")),
            )
        )
        allowed_types = sorted(KIND_SENSOR_TYPES[kind])
        checks.append(
            (
                ~pl.col("sensor_type").is_in(allowed_types),
                "kind_not_allowed",
                pl.format(f"sensor '{{}}' of type '{{}}' may not send '{kind}' records", pl.col("sensor_id"), pl.col("sensor_type")),
            )
        )
        primary = PRIMARY_FIELD[kind]
        if primary is not None:
            checks.append(self._sensor_range_check(pl.col(primary), primary))
        if kind == "utility":
            # The registered range applies to what the sensor measures, named by its unit.
            value = pl.coalesce(
                *[pl.when(pl.col("sensor_unit") == unit).then(pl.col(field)) for unit, field in UNIT_FIELD.items()]
            )
            checks.append(self._sensor_range_check(value, "value"))
        for field, place in PLACE_FIELDS.get(kind, {}).items():
            known = self.places[place]
            if known is not None:
                checks.append(
                    (
                        pl.col(field).is_not_null() & ~pl.col(field).is_in(sorted(known)),
                        f"unknown_{place}",
                        pl.format(f"unknown {place} '{{}}' in {field}", pl.col(field)),
                    )
                )
        return checks, null_only

    def _may_fail(self, kind: str, frame: pl.DataFrame) -> list[int]:
        """Indices of the checks worth evaluating: a missing-field check cannot fail in a frame whose
        columns hold no null (a column's null count is known without reading it)."""
        skip = set()
        for i, (cols, all_null) in self._null_only[kind].items():
            nulls = [frame[c].null_count() > 0 for c in cols]
            if not (all(nulls) if all_null else any(nulls)):
                skip.add(i)
        return [i for i in range(len(self._checks[kind])) if i not in skip]

    @staticmethod
    def _sensor_range_check(value: pl.Expr, name: str) -> tuple[pl.Expr, str, pl.Expr]:
        return (
            (value < pl.col("valid_min")) | (value > pl.col("valid_max")),
            "out_of_sensor_range",
            pl.format(f"{name}={{}} outside sensor '{{}}' valid range [{{}}, {{}}]", value, pl.col("sensor_id"),
                      pl.col("valid_min"), pl.col("valid_max")),
        )

    def validate(self, kind: str, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Split ``frame`` (one kind, schema columns) into applied rows and dead letters."""
        columns = list(KIND_DTYPES[kind])
        if frame.height == 0:
            return frame.with_columns(pl.lit(None, pl.Int32).alias("sensor_idx")), pl.DataFrame(schema=DEAD_SCHEMA)
        joined = frame.join(self.registry.frame, on="sensor_id", how="left", maintain_order="left")
        checks = self._checks[kind]
        active = self._may_fail(kind, frame)
        # One boolean column per check, in one select; a row's reason is its first failed check.
        # (A nested when/then chain costs polars ~1 ms to plan per call, whatever the row count.)
        failed = joined.select([checks[i][0].fill_null(False).alias(str(i)) for i in active]).to_numpy()
        bad = failed.any(axis=1)
        if not bad.any():
            return joined.select(columns + ["sensor_idx"]), pl.DataFrame(schema=DEAD_SCHEMA)
        bad_mask = pl.Series(bad)
        good = joined.filter(~bad_mask).select(columns + ["sensor_idx"])
        first = np.asarray(active)[failed[bad].argmax(axis=1)]
        bad_rows = joined.filter(bad_mask).with_columns(pl.Series("_check", first, dtype=pl.Int32))
        present = np.unique(first).tolist()
        # Only the checks that failed somewhere are formatted (usually one or two per batch).
        code, reason = pl.lit(checks[present[-1]][1]), checks[present[-1]][2]
        for i in reversed(present[:-1]):
            hit = pl.col("_check") == i
            code = pl.when(hit).then(pl.lit(checks[i][1])).otherwise(code)
            reason = pl.when(hit).then(checks[i][2]).otherwise(reason)
        return good, dead_letters(kind, bad_rows, code, reason)
