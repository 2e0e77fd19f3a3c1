"""The MQTT modules' docstring examples run."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["streams.sources.mqtt", "streams.mqtt_publish", "streams.mqtt_bridge", "streams.kafka_blocks"]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0, f"{name} has no runnable example"
