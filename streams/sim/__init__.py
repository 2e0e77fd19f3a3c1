"""The built-in city simulator (seeded, deterministic, columnar) and its scenarios.

- :class:`Simulator` generates every feed of a city (traffic detectors and probes, grid cases,
  utility readings and outages, air/noise/water-quality/weather, incidents, hazard sensors) as
  one polars frame per record kind per batch, with the exact columns of :data:`KIND_SCHEMAS`.
- :class:`Scenario` injects accidents, pollution episodes, water-main bursts and sensor faults
  (stuck, dropout, spikes, drift); :attr:`Simulator.ground_truth` says what was injected where.
- :func:`to_jsonl` encodes frames as JSON lines (``kind``-tagged, time-ordered);
  :func:`corrupt` mixes in reproducible malformed lines for validation tests.

Every value is a pure function of (seed, sensor, time): the same (city, seed, start, step_s,
scenarios) gives the same bytes however the run is cut into batches.

Example:
    >>> from streams.sim import Scenario, Simulator, to_jsonl
    >>> from streams.sim.toycity import toy_city
    >>> city = toy_city()
    >>> clean = Simulator(city, seed=1, scenarios=[])
    >>> accident = Scenario(type="accident", start_ms=clean.start_ms + 8 * 3_600_000, duration_s=2400, target="A3")
    >>> sim = Simulator(city, seed=1, scenarios=[accident])
    >>> hit, ref = sim.run(9)["traffic"], clean.run(9)["traffic"]
    >>> truth = sim.ground_truth.row(0, named=True)
    >>> def mean_speed(df):
    ...     on = df["sensor_id"].is_in(truth["sensor_ids"]) & (df["ts_ms"] >= truth["start_ms"] + 600_000) & (df["ts_ms"] < truth["end_ms"])
    ...     return df.filter(on)["speed_kmh"].mean()
    >>> mean_speed(hit) < 0.7 * mean_speed(ref)
    True
"""
from streams.sim.corrupt import CORRUPTIONS, corrupt
from streams.sim.frames import KIND_SCHEMAS, build_frame, to_jsonl
from streams.sim.scenarios import EVENT_TYPES, FAULT_TYPES, SCENARIO_TYPES, GroundTruth, Scenario
from streams.sim.simulator import SimBatch, Simulator

__all__ = [
    "CORRUPTIONS", "EVENT_TYPES", "FAULT_TYPES", "KIND_SCHEMAS", "SCENARIO_TYPES", "GroundTruth", "Scenario",
    "SimBatch", "Simulator", "build_frame", "corrupt", "to_jsonl",
]
