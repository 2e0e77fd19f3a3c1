"""Run the docstring examples of the controller-loop modules."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["streams.controllers.protocol", "streams.controllers.hub", "streams.controllers.http",
           "streams.controllers.emulator", "streams.controllers.priority", "streams.controllers.escort_run"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0
    assert result.failed == 0
