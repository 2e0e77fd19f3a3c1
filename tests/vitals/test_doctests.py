"""Every formula's docstring example runs: doctest over every module of brain.vitals."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import brain.vitals

MODULES = sorted(
    {"brain.vitals"} | {m.name for m in pkgutil.walk_packages(brain.vitals.__path__, prefix="brain.vitals.")}
)


def test_every_module_is_collected():
    # A module added later must not be skipped silently.
    for name in ("air", "traffic", "noise", "grid", "utilities", "emergency", "sensors", "health", "compute", "tables"):
        assert f"brain.vitals.{name}" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} doctest example(s) failed in {name}"
    if name != "brain.vitals.tables" and name != "brain.vitals":
        assert result.attempted > 0, f"{name} has no runnable docstring example"


def test_every_public_function_and_class_has_an_example():
    import inspect

    missing = []
    for name in MODULES:
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if attr.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)) or obj.__module__ != name:
                continue
            if ">>>" not in (obj.__doc__ or ""):
                missing.append(f"{name}.{attr}")
    assert missing == []
