"""Every runnable example of the sensor-fault modules runs and says what it shows."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["brain.kernels.sensorfault", "brain.faults", "streams.fault_operator"]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0, f"{name} has no runnable example"
