"""Proof of sameness for the ingest benchmark: a digest of what a contender computed (records, dead
letters per reason, late, ticks and per tick the city's figures and every input table's rows, nulls
and sums), taken while the contender's clock is paused, and the comparison of two digests.

    >>> d = digest(10, 9, {"malformed": 1}, 0, 0, {})
    >>> compare(d, digest(10, 8, {"malformed": 2}, 0, 0, {}))
    ['applied: ours 9 vs per-event 8', "dead: ours {'malformed': 1} vs per-event {'malformed': 2}"]
"""
from __future__ import annotations

import time

def table_figures(frame) -> list:
    """[rows, per column [nulls, sum]] ([nulls, CRC of the values in row order] for strings)."""
    import zlib

    import polars as pl

    out = [frame.height]
    for name, dtype in frame.schema.items():
        col = frame[name]
        if dtype == pl.Utf8:
            out.append([col.null_count(), zlib.crc32("\x1f".join(v if v is not None else "\x00" for v in col.to_list()).encode())])
        else:
            total = col.sum()
            out.append([col.null_count(), float(total) if dtype.is_float() else int(total)])
    return out


class Untimed:
    """Wall and CPU seconds spent on the digest, subtracted from a contender's time (the clock pauses)."""

    def __init__(self) -> None:
        self.seconds = self.cpu_seconds = 0.0

    def __enter__(self) -> None:
        self._t, self._c = time.perf_counter(), time.process_time()

    def __exit__(self, *exc) -> None:
        self.seconds += time.perf_counter() - self._t
        self.cpu_seconds += time.process_time() - self._c


def tick_figures(inputs: dict, city, segments) -> dict:
    """One tick's part of the digest: the ``city`` row's health_index/tpi/aqi, the sum of
    ``segment_traffic.speed_kmh`` and the figures of every input table (without ``tick_end_ms``)."""
    row = city.row(0, named=True)
    return {
        "city": [row["health_index"], row["tpi"], row["aqi"]],
        "segment_speed_sum": segments["speed_kmh"].sum(),
        "inputs": {name: table_figures(frame.drop("tick_end_ms", strict=False)) for name, frame in sorted(inputs.items())},
    }


def digest(records_in: int, applied: int, dead: dict, late: int, windows: int, ticks: dict) -> dict:
    """Counts, and the figures of each tick (tick end -> :func:`tick_figures`)."""
    return {"records_in": records_in, "applied": applied, "dead": dict(sorted(dead.items())), "late": late,
            "windows": windows, "ticks": ticks}


def compare(ours: dict, peer: dict) -> list[str]:
    """Differences between two digests: counts exactly, figures within 1e-9 relative."""
    diffs = []
    for key in ("records_in", "applied", "late", "windows", "dead"):
        if ours[key] != peer[key]:
            diffs.append(f"{key}: ours {ours[key]} vs per-event {peer[key]}")

    def same(a, b) -> bool:
        if isinstance(a, list) and isinstance(b, list):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, float) or isinstance(b, float):
            if a is None or b is None:
                return a is b
            return a == b or (a != a and b != b) or abs(a - b) <= 1e-9 * max(abs(a), abs(b))
        return a == b

    only = sorted(set(ours["ticks"]) ^ set(peer["ticks"]))
    if only:
        diffs.append(f"ticks in one only: {only[:5]}{' ...' if len(only) > 5 else ''}")
    for end in sorted(set(ours["ticks"]) & set(peer["ticks"]), key=int):
        a, b = ours["ticks"][end], peer["ticks"][end]
        for key in ("city", "segment_speed_sum"):
            if not same(a[key], b[key]):
                diffs.append(f"tick {end} {key}: ours {a[key]} vs per-event {b[key]}")
        for name in sorted(set(a["inputs"]) | set(b["inputs"])):
            if not same(a["inputs"].get(name), b["inputs"].get(name)):
                diffs.append(f"tick {end} input {name}: ours {a['inputs'].get(name)} vs per-event {b['inputs'].get(name)}")
    return diffs
