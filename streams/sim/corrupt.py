"""Reproducible bad input for validation tests and benchmarks: corrupt a share of JSON lines.

Corruption kinds (each counted in the returned tally):

- ``truncated``: the line is cut short (invalid JSON);
- ``wrong_type``: a numeric field becomes a string;
- ``missing_field``: a required field (``sensor_id``, ``ts_ms`` or one of the kind's) is removed;
- ``unknown_sensor``: ``sensor_id`` is not in the registry;
- ``out_of_range``: a value outside :data:`brain.schemas.PHYSICAL_RANGE` (negative volume, occupancy
  > 100, PM2.5 1e6, ...);
- ``duplicate``: the line is sent twice (the copy is the extra line);
- ``late``: ``ts_ms`` moved 6 hours into the past.

Example:
    >>> lines = b"".join(b'{"kind":"noise","sensor_id":"N1","ts_ms":%d,"laeq_db":55.0}\\n' % i for i in range(100))
    >>> bad, counts = corrupt(lines, 0.2, seed=7)
    >>> sum(counts.values())
    20
    >>> bad == corrupt(lines, 0.2, seed=7)[0]
    True
"""
from __future__ import annotations

from collections.abc import Collection

import msgspec
import msgspec.inspect as mi
import numpy as np

from brain.schemas import PHYSICAL_RANGE, RECORD_TYPES

CORRUPTIONS = ("truncated", "wrong_type", "missing_field", "unknown_sensor", "out_of_range", "duplicate", "late")
LATE_MS = 6 * 3_600_000

# Out-of-range values that mean something to a reader of the dead-letter queue.
_OUT_OF_RANGE = {"volume_veh": -5.0, "occupancy_pct": 140.0, "pm25_ugm3": 1e6, "speed_kmh": 999.0, "laeq_db": 400.0}


def _required(kind: str) -> list[str]:
    t = RECORD_TYPES.get(kind)
    if t is None:
        return ["sensor_id", "ts_ms"]
    return [f.name for f in mi.type_info(t).fields if f.required]


def corrupt(data: bytes, fraction: float, seed: int, known_sensor_ids: Collection[str] | None = None) -> tuple[bytes, dict[str, int]]:
    """Corrupt ``round(fraction * lines)`` lines of JSONL ``data``; returns the new bytes and a tally per kind.

    Deterministic in (data, fraction, seed). ``known_sensor_ids`` keeps the invented ids unregistered.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction!r}")
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    n = len(lines)
    n_bad = int(round(fraction * n))
    counts = {k: 0 for k in CORRUPTIONS}
    if n_bad == 0:
        return data, counts
    rng = np.random.default_rng([seed, 0xBAD])
    where = np.sort(rng.choice(n, size=n_bad, replace=False))
    kinds = rng.integers(len(CORRUPTIONS), size=n_bad)
    known = set(known_sensor_ids or ())
    out = list(lines)
    extra: dict[int, bytes] = {}
    for pos, k in zip(where.tolist(), kinds.tolist()):
        what = CORRUPTIONS[k]
        line = lines[pos]
        if what == "truncated":
            out[pos] = line[: int(rng.integers(1, max(len(line) - 1, 2)))]
        elif what == "duplicate":
            extra[pos] = line
        else:
            rec = msgspec.json.decode(line)
            kind = rec.get("kind", "")
            numeric = [f for f, v in rec.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and f != "ts_ms"]
            ranged = [f for f in numeric if f in PHYSICAL_RANGE]
            if what == "out_of_range" and not ranged:
                what = "wrong_type"  # e.g. a grid case: no field has a physical range to break
            if what == "wrong_type":
                field = numeric[int(rng.integers(len(numeric)))] if numeric else "ts_ms"
                rec[field] = "n/a"
            elif what == "missing_field":
                req = _required(kind)
                rec.pop(req[int(rng.integers(len(req)))], None)
            elif what == "unknown_sensor":
                sid = f"UNREG-{int(rng.integers(1 << 30)):08x}"
                while sid in known:
                    sid += "x"
                rec["sensor_id"] = sid
            elif what == "out_of_range":
                special = [f for f in ranged if f in _OUT_OF_RANGE] or ranged
                field = special[int(rng.integers(len(special)))]
                lo, hi = PHYSICAL_RANGE[field]
                bad_value = _OUT_OF_RANGE.get(field, hi * 10 + 1 if hi > 0 else lo - 1)
                # Keep the JSON type (an int field stays an int) so the line fails on range, not on type.
                rec[field] = int(bad_value) if isinstance(rec[field], int) else float(bad_value)
            elif what == "late":
                rec["ts_ms"] = int(rec.get("ts_ms", 0)) - LATE_MS
            out[pos] = msgspec.json.encode(rec)
        counts[what] += 1
    if extra:
        merged: list[bytes] = []
        for i, line in enumerate(out):
            merged.append(line)
            if i in extra:
                merged.append(extra[i])
        out = merged
    return b"\n".join(out) + b"\n", counts
