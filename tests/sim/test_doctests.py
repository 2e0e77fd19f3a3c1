"""Every module of the simulator and the replay source carries runnable examples; run them."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import streams.sim
import streams.sources

MODULES = sorted(
    ["streams.sim"]
    + [f"streams.sim.{m.name}" for m in pkgutil.iter_modules(streams.sim.__path__)]
    + [f"streams.sources.{m.name}" for m in pkgutil.iter_modules(streams.sources.__path__)]
)


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_public_classes_have_examples():
    missing = []
    for name in MODULES:
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if isinstance(obj, type) and obj.__module__ == name and not attr.startswith("_") and name != "streams.sim":
                doc = obj.__doc__ or ""
                if ">>>" not in doc and "module docstring" not in doc and "module example" not in doc:
                    missing.append(f"{name}.{attr}")
    assert not missing, missing
