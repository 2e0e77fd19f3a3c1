"""The runnable examples of the Redis-fault modules."""
import doctest
import importlib

import pytest

MODULES = ["streams.alerts.journal", "streams.alerts.spill", "streams.redis_server", "dashboards.metrics"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, monkeypatch):
    monkeypatch.delenv("CITYBRAIN_REDIS_URL", raising=False)
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
