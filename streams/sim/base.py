"""Building blocks shared by the per-family generators: periodic sensor groups, step rows, scenario effects.

Example:
    >>> import numpy as np
    >>> from streams.sim.toycity import toy_city
    >>> city = toy_city()
    >>> group = PeriodicGroup("noise", [s for s in city.sensors if s.type == "noise"], 60.0, np.random.default_rng(0))
    >>> idx, ts = group.due(0, 60_000)
    >>> len(idx) == len(group.sensors) and bool((ts < 60_000).all())
    True
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brain.city.model import Sensor
from streams.sim.clock import report_rows
from streams.sim.frames import SensorIds


class PeriodicGroup:
    """Sensors of one record kind reporting every ``interval_s`` at a fixed whole-second phase each (see the module example)."""

    def __init__(self, kind: str, sensors: list[Sensor], interval_s: float, rng: np.random.Generator):
        self.kind = kind
        self.sensors = list(sensors)
        self.ids = SensorIds([s.id for s in self.sensors])
        self.index = {s.id: i for i, s in enumerate(self.sensors)}
        self.interval_ms = int(round(interval_s * 1000))
        self.phase_ms = rng.integers(0, max(self.interval_ms // 1000, 1), len(self.sensors)) * 1000

    def due(self, a_ms: int, b_ms: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.sensors:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return report_rows(self.phase_ms, self.interval_ms, a_ms, b_ms)


@dataclass
class Rows:
    """One kind's readings of a batch before they become a frame: sensor index, time, field columns.

    Example:
        >>> r = Rows(None, np.array([0, 1]), np.array([10, 20]), {"laeq_db": np.array([50.0, 51.0])})
        >>> r.keep(np.array([False, True])); r.ts.tolist(), r.cols["laeq_db"].tolist()
        ([20], [51.0])
    """

    group: PeriodicGroup
    idx: np.ndarray
    ts: np.ndarray
    cols: dict[str, np.ndarray]

    @classmethod
    def concat(cls, parts: list["Rows"]) -> "Rows":
        if len(parts) == 1:
            return parts[0]
        return cls(parts[0].group, np.concatenate([p.idx for p in parts]), np.concatenate([p.ts for p in parts]),
                   {k: np.concatenate([p.cols[k] for p in parts]) for k in parts[0].cols})

    def keep(self, mask: np.ndarray) -> None:
        self.idx, self.ts = self.idx[mask], self.ts[mask]
        self.cols = {k: (v[mask] if isinstance(v, np.ndarray) else v) for k, v in self.cols.items()}


class Effects:
    """How scenarios bend the generators: asked per batch with the rows about to be generated.

    This neutral version changes nothing; :class:`streams.sim.scenarios.ScenarioEngine` overrides it.
    Indices are the generators' own: segment index (traffic), air-station index, utility-sensor index.

    Example:
        >>> cap, speed = Effects().traffic(np.array([0, 3]), np.array([0, 0]))
        >>> cap.tolist(), speed.tolist()
        ([1.0, 1.0], [1.0, 1.0])
    """

    def traffic(self, seg: np.ndarray, ts_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(capacity factor, speed factor) per row."""
        return np.ones(len(seg)), np.ones(len(seg))

    def air(self, station: np.ndarray, ts_ms: np.ndarray) -> dict[str, np.ndarray]:
        """Additive concentration per field per row (fields absent = no change)."""
        return {}

    def utility(self, sensor: np.ndarray, ts_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(factor on the value, extra in units of the sensor's nominal) per row."""
        return np.ones(len(sensor)), np.zeros(len(sensor))


def clip_to_valid(values: np.ndarray, sensors_min: np.ndarray, sensors_max: np.ndarray) -> np.ndarray:
    """Clip each reading into its sensor's declared valid range (healthy sensors stay inside it)."""
    return np.minimum(np.maximum(values, sensors_min), sensors_max)
