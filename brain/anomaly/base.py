"""The one protocol every anomaly detector follows: two verbs, and a fused third where the kernel
scores then learns in one pass.

Like River's ``anomaly.base``: scoring never changes state and learning returns the detector.
CityBrain's numba kernel scores and learns a point in one pass (the fast path), and the method
that does both says so:

* ``score_many(batch)`` — scores, state untouched (asking twice gives the same answer);
* ``learn_many(batch)`` — learns, returns the detector (chainable);
* ``score_learn_many(batch)`` — scores each point against what was learned before it, then learns
  it: the same scores as ``score_many`` point by point followed by ``learn_many``, in one pass.

A detector of one series also answers the ``*_one`` verbs for one point at a time
(:class:`OnePointDetector`). What a batch is depends on the detector: ``(ts_s, values)`` arrays
for :class:`~brain.anomaly.SeasonalDetector`, ``(keys, ts_ms, values)`` for
:class:`~brain.anomaly.BatchDetector`, ``(frame, metric)`` for :class:`~brain.anomaly.KeyedDetector`,
a feature matrix for :class:`~brain.anomaly.OnnxModel` (trained offline: ``learns_online`` is
False and its ``learn_many`` refuses with a clear error). Parameters are validated when a detector
is built, never at the first point.

Example:
    >>> from brain.anomaly import BatchDetector, KeyedDetector, SeasonalDetector
    >>> all(isinstance(d, BatchScorer) for d in (SeasonalDetector(), BatchDetector(), KeyedDetector()))
    True
    >>> det = SeasonalDetector()
    >>> isinstance(det, OnePointDetector)
    True
    >>> for i in range(100):
    ...     _ = det.learn_one(60.0 * i, 20.0 + i % 3)
    >>> det.score_one(6000.0, 90.0) == det.score_one(6000.0, 90.0) > 0.999   # scoring changes nothing
    True
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class BatchScorer(Protocol):
    """Scores and learns batches (see the module docstring for what a batch is per detector)."""

    learns_online: bool

    def score_many(self, *batch: Any, **options: Any) -> Any:
        """Scores of a batch; the detector's state is not changed."""

    def learn_many(self, *batch: Any, **options: Any) -> "BatchScorer":
        """Learn a batch; returns the detector."""

    def score_learn_many(self, *batch: Any, **options: Any) -> Any:
        """Score each point against what was learned before it, then learn it (one pass)."""


@runtime_checkable
class OnePointDetector(Protocol):
    """One series, one point at a time: ``timestamp`` (seconds since the epoch or a datetime), ``value``."""

    def score_one(self, timestamp: Any, value: Any) -> float:
        """The point's score; the detector's state is not changed."""

    def learn_one(self, timestamp: Any, value: Any) -> "OnePointDetector":
        """Learn the point; returns the detector."""

    def score_learn_one(self, timestamp: Any, value: Any) -> float:
        """Score the point, then learn it (one pass: the fast path)."""
