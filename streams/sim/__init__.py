"""The built-in city simulator (seeded, deterministic, columnar) and its scenarios.

- :class:`Simulator` generates every feed of a city as polars frames per record kind.
- :class:`Scenario` injects accidents, pollution episodes, water-main bursts and sensor faults;
  :attr:`Simulator.ground_truth` says what was injected where.
- :func:`to_jsonl` encodes frames as JSON lines; :func:`corrupt` mixes in malformed lines.
"""
from streams.sim.corrupt import CORRUPTIONS, corrupt
from streams.sim.frames import KIND_SCHEMAS, build_frame, to_jsonl
from streams.sim.scenarios import EVENT_TYPES, FAULT_TYPES, SCENARIO_TYPES, GroundTruth, Scenario
from streams.sim.simulator import SimBatch, Simulator

__all__ = [
    "CORRUPTIONS", "EVENT_TYPES", "FAULT_TYPES", "KIND_SCHEMAS", "SCENARIO_TYPES", "GroundTruth", "Scenario",
    "SimBatch", "Simulator", "build_frame", "corrupt", "to_jsonl",
]
