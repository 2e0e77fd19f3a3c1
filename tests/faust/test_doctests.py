"""The distributed engine's docstring examples run."""
from __future__ import annotations

import doctest
import importlib

import pytest

pytest.importorskip("faust", reason="faust-streaming is not installed (the `test`/`kafka` extras)")
pytest.importorskip("aiokafka", reason="aiokafka is not installed (the `test`/`kafka` extras)")

MODULES = ["streams.faust_driver", "streams.faust_io", "streams.faust_read", "streams.faust_shards", "streams.faust_stages", "streams.faust_state"]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0, f"{name} has no runnable example"
