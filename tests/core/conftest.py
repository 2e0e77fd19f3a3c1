from __future__ import annotations

import msgspec
import numpy as np


T0 = 1_763_337_600_000  # 2025-11-17 00:00 UTC, a Monday


def inputs_only(inputs, city, window_end_ms):
    """A vitals function that returns the window aggregates themselves (to compare pipelines)."""
    return dict(inputs)


def traffic_lines(city, minutes: int, t0: int = T0, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    detectors = [s for s in city.sensors if s.type in ("loop", "video", "radar")]
    lines = []
    for m in range(minutes):
        for s in detectors:
            lines.append(
                msgspec.json.encode(
                    {
                        "kind": "traffic",
                        "sensor_id": s.id,
                        "ts_ms": t0 + m * 60_000 + int(rng.integers(0, 1000)),
                        "volume_veh": int(rng.integers(0, 40)),
                        "occupancy_pct": round(float(rng.uniform(0, 40)), 2),
                        "speed_kmh": round(float(rng.uniform(5, 70)), 1),
                    }
                )
            )
    return lines
