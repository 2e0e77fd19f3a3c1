"""The ingest benchmark's data: a simulated stretch of the demo city as JSON lines with corrupted
lines mixed in, cut in batches of stream time (the cut points in a ``.cuts`` file beside it), shared by
``bench/ingest.py``, its per-event peer and ``bench/vitals_batch_speed.py``.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "day.jsonl"
    >>> info = make_data(path, 0.25, 0.0, 15)
    >>> sum(len(b) for b in read_batches(path)) == info["bytes"]
    True
"""
from __future__ import annotations

import json
from pathlib import Path


def make_data(path: Path, hours: float, bad_fraction: float, batch_minutes: int, fine_minutes: int | None = None) -> dict:
    """A simulated stretch of the demo city as JSON lines at ``path``, cut in ``batch_minutes`` batches
    (``path``'s ``.cuts``). With ``fine_minutes`` (a divisor of ``batch_minutes``) the same bytes are
    also cut in those finer batches, in ``fine_path(path)`` (a link to the same lines)."""
    step = fine_minutes or batch_minutes
    if batch_minutes % step:
        raise SystemExit(f"--also-batch-minutes {step} must divide --batch-minutes {batch_minutes}")
    from brain.city import demo_city_path, load_city
    from streams.sim import Simulator
    from streams.sim.corrupt import corrupt

    city = load_city(demo_city_path())
    sim = Simulator(city, seed=7)
    batches = []
    counts: dict[str, int] = {}
    for i, chunk in enumerate(sim.jsonl_batches(sim.start_ms + int(hours * 3_600_000), batch_s=step * 60)):
        if bad_fraction > 0:
            chunk, injected = corrupt(chunk, bad_fraction, seed=i, known_sensor_ids=[s.id for s in city.sensors])
            for k, v in injected.items():
                counts[k] = counts.get(k, 0) + v
        batches.append(chunk if chunk.endswith(b"\n") else chunk + b"\n")
    data = b"".join(batches)
    path.write_bytes(data)
    fine = [len(b) for b in batches]
    group = batch_minutes // step
    (path.with_suffix(".cuts")).write_text(json.dumps([sum(fine[i : i + group]) for i in range(0, len(fine), group)]))
    if fine_minutes:
        fine_path(path).symlink_to(path.name)
        fine_path(path).with_suffix(".cuts").write_text(json.dumps(fine))
    return {"bytes": len(data), "lines": data.count(b"\n"), "injected": counts}


def fine_path(path: Path) -> Path:
    """The same lines as ``path``, cut in the finer batches."""
    return path.with_name(path.stem + "-fine" + path.suffix)


def read_batches(path: Path) -> list[bytes]:
    data = path.read_bytes()
    cuts = json.loads(path.with_suffix(".cuts").read_text())
    out, pos = [], 0
    for n in cuts:
        out.append(data[pos : pos + n])
        pos += n
    return out
