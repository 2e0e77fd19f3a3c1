"""Shared simulated input: the demo city from 04:00 to 10:00 local on a Monday (the morning rush)."""
from __future__ import annotations

import pytest

from streams.sim import Simulator

HOUR_MS = 3_600_000


@pytest.fixture(scope="session")
def morning(city):
    """(start_ms, [(batch_end_ms, frames)]) — 6 simulated hours in half-hour batches, generated once."""
    start = Simulator(city).start_ms + 4 * HOUR_MS
    sim = Simulator(city, seed=3, start_ms=start)
    batches = [(b.end_ms, b.frames) for b in sim.batches(start + 6 * HOUR_MS, batch_s=1800)]
    return start, batches
