"""The runnable examples in the alert modules' docstrings."""
import doctest
import importlib

import pytest

MODULES = ["brain.alerts.model", "brain.alerts.fingerprint", "brain.alerts.lifecycle", "brain.alerts.inhibition",
           "brain.alerts.silences", "brain.alerts.correlation", "brain.alerts.roadgraph", "brain.alerts.supplyzones", "brain.alerts.escalation", "brain.alerts.routing", "brain.alerts.grouping",
           "brain.alerts.state", "brain.alerts.pipeline", "brain.alerts.rules", "brain.alerts.rules.schema", "brain.alerts.rules.packs",
           "brain.alerts.rules.templates", "brain.alerts.rules.locate", "brain.alerts.rules.candidates",
           "brain.alerts.rules.compiled", "brain.alerts.rules.reference", "brain.alerts.rules.kinds",
           "brain.alerts.rules.engine", "brain.alerts.enrich",
           "brain.alerts.cap", "brain.alerts.sdm", "streams.alerts.delivery", "streams.redis_server"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, monkeypatch):
    monkeypatch.delenv("CITYBRAIN_REDIS_URL", raising=False)
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
