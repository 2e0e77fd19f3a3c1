"""The built-in city simulator: seeded, deterministic, columnar, faster than real time.

Example:
    >>> from streams.sim import Simulator
    >>> from streams.sim.toycity import toy_city
    >>> sim = Simulator(toy_city(), seed=1, scenarios=[])
    >>> batch = next(sim.batches(sim.start_ms + 60_000))
    >>> {"traffic", "noise", "utility"} <= set(batch.frames), batch.end_ms - batch.start_ms
    (True, 60000)
    >>> batch.frames["traffic"].columns
    ['sensor_id', 'ts_ms', 'volume_veh', 'occupancy_pct', 'speed_kmh', 'interval_s']
    >>> line = to_jsonl(batch.frames).splitlines()[0]
    >>> line.startswith(b'{"kind":')
    True
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import polars as pl

from brain.city.model import City
from brain.schemas import KINDS
from streams.sim.base import Rows
from streams.sim.clock import LocalClock, default_start_ms, local_time
from streams.sim.corrupt import corrupt
from streams.sim.environment import EnvironmentGen
from streams.sim.events import EventQueue, GridCaseGen, IncidentGen, OutageGen
from streams.sim.frames import build_frame, to_jsonl
from streams.sim.lifelines import LifelineGen
from streams.sim.scenarios import FAULT_TYPES, Scenario, ScenarioEngine, ground_truth_frame
from streams.sim.traffic import TrafficGen
from streams.sim.vehicles import VehicleRun, vehicle_frame

__all__ = ["SimBatch", "Simulator", "to_jsonl"]


@dataclass(frozen=True)
class SimBatch:
    """Records of ``[start_ms, end_ms)``: one polars frame per record kind present, rows sorted by ``ts_ms``.

    Example:
        >>> import polars as pl
        >>> b = SimBatch(0, 60_000, {"noise": pl.DataFrame({"sensor_id": ["N1"], "ts_ms": [5_000]})})
        >>> b.n_events
        1
    """

    start_ms: int
    end_ms: int
    frames: dict[str, pl.DataFrame]

    @property
    def n_events(self) -> int:
        return sum(df.height for df in self.frames.values())


class Simulator:
    """A seeded, deterministic simulation of every feed of a city.

    Example:
        >>> from streams.sim.toycity import toy_city
        >>> sim = Simulator(toy_city(), seed=0)
        >>> frames = sim.run(hours=1)
        >>> frames["traffic"].height, sim.now_ms - sim.start_ms
        (480, 3600000)
        >>> Simulator(toy_city(), step_s=0)
        Traceback (most recent call last):
        ...
        ValueError: step_s must be a whole number of seconds in 1..3600, got 0

    Parameters
    ----------
    city:
        The :class:`brain.city.model.City` to simulate (any city folder loaded by ``brain.city.load_city``).
    seed:
        Same (city, seed, start_ms, step_s, scenarios) -> byte-identical output.
    start_ms:
        First instant (UTC epoch ms). Default: Monday 2026-06-01 00:00 in the city's timezone.
    step_s:
        Simulation step in whole seconds (1..3600). Random draws are keyed by step, so the output does not
        depend on how steps are grouped into batches, only on ``step_s``.
    scenarios:
        ``"default"`` (a few accidents, a pollution episode and a water-main burst per simulated day,
        placed from the seed), a list of :class:`~streams.sim.scenarios.Scenario`, or ``[]`` for a clean run.
    faults:
        Sensor faults: ``"default"`` (one stuck, dropout, spikes and drift sensor per day), a list of
        fault :class:`Scenario` objects, or ``[]``. ``None`` follows ``scenarios`` (default -> default, else none).
    bad_fraction:
        Share of malformed lines :meth:`jsonl_batches` mixes in (see :func:`streams.sim.corrupt.corrupt`).
    readahead_s:
        Small batches are cut from ``readahead_s`` generated at once (same records, far less overhead
        per batch); 0 turns it off. A multiple of ``step_s``.
    vehicles:
        Tracked vehicles (:class:`~streams.sim.vehicles.VehicleRun`, e.g. the demo city's ambulance
        and bus from :func:`~streams.sim.vehicles.demo_vehicles`) reporting ``vehicle_position``.
    """

    def __init__(self, city: City, seed: int = 0, start_ms: int | None = None, step_s: int = 60,
                 scenarios: Literal["default"] | Sequence[Scenario] = "default",
                 faults: Literal["default"] | Sequence[Scenario] | None = None, bad_fraction: float = 0.0,
                 readahead_s: int = 900, vehicles: Sequence[VehicleRun] = ()):
        if not isinstance(city, City):
            raise ValueError(f"city must be a brain.city.model.City, got {type(city).__name__}")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if not isinstance(step_s, (int, np.integer)) or not 1 <= step_s <= 3600:
            raise ValueError(f"step_s must be a whole number of seconds in 1..3600, got {step_s!r}")
        if not isinstance(readahead_s, (int, np.integer)) or readahead_s < 0 or readahead_s % step_s:
            raise ValueError(f"readahead_s must be a non-negative multiple of step_s, got {readahead_s!r}")
        if not 0.0 <= bad_fraction < 1.0:
            raise ValueError(f"bad_fraction must be in [0, 1), got {bad_fraction!r}")
        try:
            self.tz = ZoneInfo(city.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"city timezone {city.timezone!r} is not a known IANA zone") from exc
        self.city = city
        self.seed = int(seed)
        self.step_ms = int(step_s) * 1000
        self.start_ms = int(default_start_ms(self.tz) if start_ms is None else start_ms)
        self.now_ms = self.start_ms
        self.bad_fraction = float(bad_fraction)
        self.readahead_ms = int(readahead_s) * 1000
        self._ahead: dict[str, tuple[pl.DataFrame, np.ndarray]] | None = None
        self._ahead_end = 0
        self.corruption_counts: dict[str, int] = {}

        self.traffic = TrafficGen(city, self.seed)
        self.env = EnvironmentGen(city, self.seed)
        self.life = LifelineGen(city, self.seed)
        self.periodic = [self.traffic, self.env, self.life]
        self.case_gen = GridCaseGen(city, self.seed)
        self.incident_gen = IncidentGen(city, self.seed)
        self.outage_gen = OutageGen(city, self.seed)
        self.queues = {k: EventQueue(k) for k in ("grid_case", "incident", "outage")}
        self.clock = LocalClock(self.tz)
        self.engine = ScenarioEngine(city, self.seed, self.tz, self.traffic, self.env, self.life, self.case_gen,
                                     self.incident_gen, self.queues)

        if isinstance(scenarios, str):
            if scenarios != "default":
                raise ValueError(f"scenarios must be 'default' or a list of Scenario, got {scenarios!r}")
            self._default_events = True
            scenario_list: list[Scenario] = []
        else:
            self._default_events = False
            scenario_list = list(scenarios)
        if faults is None:
            faults = "default" if self._default_events else []
        if isinstance(faults, str):
            if faults != "default":
                raise ValueError(f"faults must be 'default' or a list of Scenario, got {faults!r}")
            self._default_faults = True
        else:
            self._default_faults = False
            scenario_list += list(faults)
        for sc in scenario_list:
            if not isinstance(sc, Scenario):
                raise ValueError(f"scenarios/faults must hold Scenario objects, got {type(sc).__name__}")
            self.engine.add(sc)
        self._keep_default = {t for t in ("accident", "pollution_episode", "water_main_burst") if self._default_events}
        self._keep_default |= set(FAULT_TYPES) if self._default_faults else set()
        self.known_sensor_ids = frozenset(s.id for s in city.sensors)
        self.vehicles = list(vehicles)

    # --- generation ---------------------------------------------------------------------------------
    def _schedule(self, a_ms: int, b_ms: int) -> None:
        if not self._keep_default:
            return
        for t in (a_ms, b_ms - 1):
            day = local_time(t, self.tz).day
            self.engine.schedule_day(day, self.start_ms, self._keep_default)

    def _generate(self, a_ms: int, b_ms: int) -> dict[str, pl.DataFrame]:
        """All records of ``[a_ms, b_ms)``: periodic readings in one vectorised pass, lifecycle arrivals per step."""
        t = a_ms
        while t < b_ms:  # Poisson arrivals are drawn per step: their rates change through the day
            e = min(t + self.step_ms, b_ms)
            self._schedule(t, e)
            hour = local_time((t + e) // 2, self.tz)
            for kind, gen in (("grid_case", self.case_gen), ("incident", self.incident_gen), ("outage", self.outage_gen)):
                self.queues[kind].push(gen.arrivals(t, e, hour, self.seed))
            t = e
        rows: dict[str, Rows] = {}
        for gen in self.periodic:
            rows.update(gen.rows(a_ms, b_ms, self.clock, self.engine))
        self.engine.apply_faults(rows, a_ms, b_ms)
        frames: dict[str, pl.DataFrame] = {}
        for kind in KINDS:
            if kind in rows:
                r = rows[kind]
                if len(r.idx):
                    frames[kind] = build_frame(kind, r.group.ids.gather(r.idx), r.ts, r.cols)
            elif kind in self.queues:
                df = self.queues[kind].pop(a_ms, b_ms)
                if df is not None:
                    frames[kind] = df
            elif kind == "vehicle_position" and self.vehicles:
                df = vehicle_frame(self.vehicles, a_ms, b_ms, self.seed)
                if df is not None:
                    frames[kind] = df
        return frames

    def batches(self, until_ms: int, batch_s: int | None = None) -> Iterator[SimBatch]:
        """Generate from the current clock up to ``until_ms`` (exclusive), one :class:`SimBatch` per
        ``batch_s`` seconds (default: one per step; must be a multiple of ``step_s``). Calling again
        continues. The records do not depend on ``batch_s``; larger batches are just faster."""
        batch_ms = self.step_ms if batch_s is None else int(batch_s * 1000)
        if batch_ms < self.step_ms or batch_ms % self.step_ms:
            raise ValueError(f"batch_s must be a positive multiple of step_s ({self.step_ms // 1000}), got {batch_s!r}")
        while self.now_ms < until_ms:
            a = self.now_ms
            b = min(a + batch_ms, int(until_ms))
            frames = self._take(a, b)
            self.now_ms = b
            yield SimBatch(a, b, frames)

    def _take(self, a_ms: int, b_ms: int) -> dict[str, pl.DataFrame]:
        """Records of [a, b), served from a read-ahead buffer when the request is small: generating
        ``readahead_s`` at once costs little more than one step (numpy call overhead dominates), and
        records are pure functions of time, so slicing them out later gives the same records."""
        parts: list[dict[str, pl.DataFrame]] = []
        if self._ahead is not None and a_ms < self._ahead_end:
            end = min(b_ms, self._ahead_end)
            parts.append(self._slice_ahead(a_ms, end))
            a_ms = end
            if a_ms >= self._ahead_end:
                self._ahead = None
        if a_ms < b_ms:
            span = b_ms - a_ms
            if span >= self.readahead_ms or span % self.step_ms:
                parts.append(self._generate(a_ms, b_ms))
            else:
                self._ahead_end = a_ms + self.readahead_ms
                frames = self._generate(a_ms, self._ahead_end)
                self._ahead = {k: (df, df["ts_ms"].to_numpy()) for k, df in frames.items()}
                parts.append(self._slice_ahead(a_ms, b_ms))
        if len(parts) == 1:
            return parts[0]
        return {k: pl.concat([p[k] for p in parts if k in p]) for k in KINDS if any(k in p for p in parts)}

    def _slice_ahead(self, a_ms: int, b_ms: int) -> dict[str, pl.DataFrame]:
        out = {}
        for kind, (df, ts) in self._ahead.items():
            i, j = np.searchsorted(ts, [a_ms, b_ms], side="left")
            if j > i:
                out[kind] = df.slice(int(i), int(j - i))
        return out

    def run(self, hours: float) -> dict[str, pl.DataFrame]:
        """Generate ``hours`` from the current clock and return all records, one frame per kind."""
        until = self.now_ms + int(hours * 3_600_000)
        acc: dict[str, list[pl.DataFrame]] = {}
        step_s = self.step_ms // 1000
        for batch in self.batches(until, batch_s=step_s * max(1, 3600 // step_s)):
            for k, df in batch.frames.items():
                acc.setdefault(k, []).append(df)
        return {k: pl.concat(v) for k, v in acc.items()}

    def jsonl_batches(self, until_ms: int, batch_s: int | None = None) -> Iterator[bytes]:
        """Like :meth:`batches` but as JSON lines; with ``bad_fraction > 0`` malformed lines are mixed in
        reproducibly and tallied in :attr:`corruption_counts`."""
        for batch in self.batches(until_ms, batch_s):
            data = to_jsonl(batch.frames)
            if self.bad_fraction > 0 and data:
                data, counts = corrupt(data, self.bad_fraction, seed=self.seed * 1_000_003 + batch.start_ms // 1000,
                                       known_sensor_ids=self.known_sensor_ids)
                for k, v in counts.items():
                    self.corruption_counts[k] = self.corruption_counts.get(k, 0) + v
            yield data

    # --- ground truth ---------------------------------------------------------------------------------
    @property
    def ground_truth(self) -> pl.DataFrame:
        """Scenarios that started before the current clock (the ones the data so far can show)."""
        return ground_truth_frame([t for t in self.engine.truths() if t.start_ms < self.now_ms])

    def ground_truth_json(self) -> bytes:
        import msgspec

        return msgspec.json.format(msgspec.json.encode([t for t in self.engine.truths() if t.start_ms < self.now_ms]), indent=2)
