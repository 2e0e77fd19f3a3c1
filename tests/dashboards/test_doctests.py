"""The runnable examples in the cockpit service's docstrings (real Redis where they need one)."""
import doctest
import importlib

import pytest

MODULES = ["dashboards.api.tokens", "dashboards.api.errors", "dashboards.api.auth", "dashboards.api.history",
           "dashboards.api.live", "dashboards.api.context", "dashboards.api.diagram", "dashboards.api.prom",
           "dashboards.api.app", "dashboards.api.server", "dashboards.api.encoding", "dashboards.api.policy", "dashboards.terminal",
           "dashboards.api.routers.sensors", "dashboards.api.routers.admin", "streams.cockpit_tables",
           "streams.controllers.centre", "brain.greenwave.problems", "dashboards.api.respcache",
           "streams.controllers.status_ingest", "dashboards.api.routers.escort", "dashboards.api.routers.vehicles",
           "streams.controllers.follow", "dashboards.api.relay"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, monkeypatch):
    monkeypatch.delenv("CITYBRAIN_REDIS_URL", raising=False)
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
