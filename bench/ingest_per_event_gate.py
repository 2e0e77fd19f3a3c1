"""The per-event peer's gate (``bench/ingest_per_event.py``): a line read the plain way -- ``json`` per
line, the schema's fields checked one by one, dicts and sets for the city -- to a record or a counted
reason. Only contracts are shared with ours (record schemas, the gate's tables), never its decoding or
checking code.

Where the per-line reading can still differ from msgspec's (none of these occurs in the benchmark's
data): a line with two faults, a type fault ahead of a syntax fault (msgspec reads front to back and
says wrong_type; json parses the whole line first and says malformed); a repeated key (msgspec
checks every copy, json keeps the last); bytes that are not UTF-8 inside a string of a field the
schema does not know (msgspec skips the field, here the line is malformed).

    >>> _has_lone_surrogate({"k": ["ok", "\\ud800"]}), _has_lone_surrogate("fine")
    (True, False)
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass


def _per_event_specs() -> dict:
    """Per kind: {field: (type, optional, allowed values)}, required fields, defaults (from the schema structs)."""
    import types
    import typing

    import msgspec

    from brain.schemas import RECORD_TYPES

    specs = {}
    for kind, t in RECORD_TYPES.items():
        hints = typing.get_type_hints(t)
        fields, required, defaults = {}, [], {}
        for f in msgspec.structs.fields(t):
            hint, optional, allowed = hints[f.name], False, None
            if typing.get_origin(hint) in (typing.Union, types.UnionType):
                args = typing.get_args(hint)
                optional = type(None) in args
                hint = next(a for a in args if a is not type(None))
            if typing.get_origin(hint) is typing.Literal:
                typ, allowed = "literal", frozenset(typing.get_args(hint))
            else:
                typ = {int: "int", float: "float", str: "str"}[hint]
            fields[f.name] = (typ, optional, allowed)
            if f.required:
                required.append(f.name)
            else:
                defaults[f.name] = f.default
        specs[kind] = (fields, required, defaults)
    return specs


def _has_lone_surrogate(value) -> bool:
    """A string (key or value, at any depth) with an unpaired UTF-16 surrogate from a ``\\u`` escape."""
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


@dataclass(frozen=True)
class CityLookups:
    """The city and schema as plain dicts and lists, shared by the gate and the per-event windows."""

    specs: dict  # kind -> ({field: (type, optional, allowed)}, required fields, defaults)
    ids: list  # sensor ids in registry order
    segment_ids: list  # segment ids in registry order
    sensors: dict  # sensor id -> (registry index, type, valid_min, valid_max, unit, segment index or -1)
    seg_of: list  # registry index -> segment index or -1


def per_event_gate(city, dead_letter: Callable[[str], None]) -> tuple[Callable, CityLookups]:
    """``(read, lookups)``: ``read(line, kinds_seen)`` is ``(kind, record, sensor)`` for a line that passes
    the gate, else ``None`` after ``dead_letter(reason)``; ``kinds_seen`` gets the kinds in order of
    their first well-typed record. A closure over local names, as a plain per-event reader would be."""
    from brain.schemas import KIND_SENSOR_TYPES, PHYSICAL_RANGE, PRIMARY_FIELD
    from brain.validate import MEASURED_FIELDS, PLACE_FIELDS, UNIT_FIELD

    # --- static lookups: the schema and the city ---
    specs = _per_event_specs()
    ids = [s.id for s in city.sensors]
    segment_ids = [s.id for s in city.segments]
    segment_pos = {sid: i for i, sid in enumerate(segment_ids)}
    # sensor id -> (registry index, type, valid_min, valid_max, unit, segment index or -1)
    sensors = {s.id: (i, s.type, float(s.valid_min), float(s.valid_max), s.unit, segment_pos.get(s.segment or "", -1))
               for i, s in enumerate(city.sensors)}
    seg_of = [sensors[i][5] for i in ids]
    known_places = {"cell": {c.id for c in city.cells}, "segment": set(segment_ids), "intersection": {x.id for x in city.intersections}}
    places = {kind: [(name, f"unknown_{place}", known_places[place]) for name, place in fields.items()]
              for kind, fields in PLACE_FIELDS.items()}
    # Range checks in column order: sensor_id, ts_ms, then the struct's own fields.
    ranged = {kind: [(f, *PHYSICAL_RANGE[f]) for f in ["sensor_id", "ts_ms", *fields] if f in PHYSICAL_RANGE]
              for kind, (fields, _, _) in specs.items()}
    int64_min, int64_max = -(2**63), 2**63 - 1
    inf = math.inf

    def reject_constant(name):
        raise ValueError(f"{name} is not JSON")

    decoder = json.JSONDecoder(parse_constant=reject_constant)  # NaN and Infinity are not JSON
    decode, raw_decode = decoder.decode, decoder.raw_decode

    def read(line: bytes, kinds_seen: dict):
        """(kind, record, sensor) of a line that passes the gate, else None (counted as dead).
        ``kinds_seen`` gets the kinds in order of their first well-typed record."""
        trailing = False
        try:
            text = line.decode()
            try:
                rec = decode(text)
            except json.JSONDecodeError as exc:
                if exc.msg != "Extra data":
                    raise
                # More after the first value: msgspec reads that value (and may refuse it) first.
                rec, trailing = raw_decode(text, len(text) - len(text.lstrip()))[0], True
            if "\\u" in text and _has_lone_surrogate(rec):
                raise ValueError("lone surrogate")
        except (ValueError, RecursionError):
            dead_letter("malformed")
            return None
        if type(rec) is not dict:
            dead_letter("malformed")
            return None
        kind = rec.get("kind")
        if type(kind) is not str or kind not in specs:
            dead_letter("unknown_kind")
            return None
        fields, required, defaults = specs[kind]
        # Strict types, field by field in the line's order (the first offence is the reason).
        wide = False
        for key, value in rec.items():
            spec = fields.get(key)
            if spec is None:
                continue
            typ, optional, allowed = spec
            if value is None:
                if optional:
                    continue
                dead_letter("wrong_type")
                return None
            cls = type(value)
            if typ == "float":
                if cls is int:
                    try:
                        rec[key] = float(value)
                    except OverflowError:
                        dead_letter("wrong_type")
                        return None
                elif cls is not float or value == inf or value == -inf:  # 1e999: out of a float's range
                    dead_letter("wrong_type")
                    return None
            elif typ == "int":
                if cls is not int:
                    dead_letter("wrong_type")
                    return None
                if not int64_min <= value <= int64_max:
                    wide = True
            elif cls is not str:
                dead_letter("wrong_type")
                return None
            elif allowed is not None and value not in allowed:
                dead_letter("bad_value")
                return None
        for name in required:
            if name not in rec:
                dead_letter("missing_field")
                return None
        if trailing:
            dead_letter("malformed")
            return None
        kinds_seen.setdefault(kind, None)
        if wide:  # columns are 64-bit
            dead_letter("wrong_type")
            return None
        for name, default in defaults.items():
            if name not in rec:
                rec[name] = default
        # The gate, in its order.
        names = MEASURED_FIELDS.get(kind)
        if names and all(rec[f] is None for f in names):
            dead_letter("missing_field")
            return None
        for name, lo, hi in ranged[kind]:
            v = rec[name]
            if v is not None and (v < lo or v > hi):
                dead_letter("out_of_range")
                return None
        sensor = sensors.get(rec["sensor_id"])
        if sensor is None:
            dead_letter("unknown_sensor")
            return None
        if sensor[1] not in KIND_SENSOR_TYPES[kind]:
            dead_letter("kind_not_allowed")
            return None
        primary = PRIMARY_FIELD[kind]
        if primary is not None:
            v = rec[primary]
            if v is not None and (v < sensor[2] or v > sensor[3]):
                dead_letter("out_of_sensor_range")
                return None
        if kind == "utility" and sensor[4] in UNIT_FIELD:  # the registered range of what the sensor measures
            v = rec[UNIT_FIELD[sensor[4]]]
            if v is not None and (v < sensor[2] or v > sensor[3]):
                dead_letter("out_of_sensor_range")
                return None
        for name, code, known in places.get(kind, ()):
            v = rec[name]
            if v is not None and v not in known:
                dead_letter(code)
                return None
        return kind, rec, sensor

    return read, CityLookups(specs, ids, segment_ids, sensors, seg_of)
