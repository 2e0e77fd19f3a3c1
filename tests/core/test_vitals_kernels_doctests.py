"""The docstring examples of the vital-sign kernels run (brain.kernels.{groupsum,latest,segments,freshness,iaqi,cases})."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["brain.kernels.groupsum", "brain.kernels.latest", "brain.kernels.segments", "brain.kernels.freshness", "brain.kernels.iaqi",
           "brain.kernels.cases"]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
