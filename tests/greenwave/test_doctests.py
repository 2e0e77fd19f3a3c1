"""Run the docstring examples of the green-wave modules."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "brain.greenwave",
    "brain.kernels.bandwidth",
    "brain.greenwave.model",
    "brain.greenwave.webster",
    "brain.greenwave.milp",
    "brain.greenwave.plan",
    "brain.greenwave.optimizer",
    "brain.greenwave.safety",
    "brain.greenwave.transition",
    "brain.greenwave.replanner",
    "brain.greenwave.priority",
    "streams.sinks.signal_plans",
    "brain.kernels.platoon",
    "brain.kernels.platoon_shift",
    "brain.greenwave.band",
    "brain.greenwave.delay",
    "brain.greenwave.limits",
    "brain.greenwave.escort",
    "brain.greenwave.network",
    "brain.greenwave.subsystems",
    "bench.sumo_net.own_cycle",
    "brain.greenwave.side_streets",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0
    assert result.failed == 0
