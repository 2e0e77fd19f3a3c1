"""Run the docstring examples of the live green-wave modules."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["streams.greenwave_operator", "brain.greenwave.corridor_flows", "brain.greenwave.replanner"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0
    assert result.failed == 0
