"""Every public docstring example in the anomaly area runs."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "brain.kernels.ewma",
    "brain.kernels.robust",
    "brain.kernels.seasonal",
    "brain.kernels.changepoint",
    "brain.kernels.faults",
    "brain.kernels.detector",
    "brain.kernels.detector_batch",
    "brain.kernels.detector_single",
    "brain.kernels.detector_ref",
    "brain.kernels.counts",
    "brain.kernels.period",
    "brain.kernels.period_find",
    "brain.anomaly.base",
    "brain.anomaly.snapshot",
    "brain.anomaly.delta",
    "streams.anomaly_store",
    "brain.kernels.surprise",
    "brain.anomaly.streaming", "brain.anomaly.batch_detector",
    "brain.anomaly.onnx_scorer",
    "brain.anomaly.keyed",
    "brain.anomaly.peers",
    "models.train",
    "models.simhistory",
]


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} doctest example(s) failed in {name}"
    assert result.attempted > 0, f"{name} has no runnable docstring example"
