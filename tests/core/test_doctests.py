"""Every runnable example in the streaming core's docstrings runs and says what it shows."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "brain.ingest", "brain.validate", "brain.eventtime", "brain.windows", "brain.kernels.window", "brain.kernels.dedup", "brain.kernels.lifecycle", "brain.lifecycle", "brain.series",
    "brain.pipeline", "brain.pipeline_config", "brain.lifecycle_kinds", "brain.ticks", "streams.local", "streams.feeds", "streams.sinks.history", "streams.anomaly_operator",
    "dashboards.metrics", "citybrain.settings", "citybrain.commands.run", "citybrain.engine",
    "brain.warmup", "citybrain.outputs",
    "brain.checkpoint", "brain.nesting", "streams.checkpoint_file",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0, f"{name} has no runnable example"
