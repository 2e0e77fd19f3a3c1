"""Anomaly detection: streaming numba detectors and ONNX-served learned models.

* :class:`BatchScorer` / :class:`OnePointDetector` — the one protocol every detector follows
  (:mod:`brain.anomaly.base`): ``score_*`` never changes state, ``learn_*`` returns the detector,
  ``score_learn_*`` does both in one pass.
* :func:`default_detector` — a fresh univariate detector for any metric series
  (``score_learn_one(timestamp, value) -> float in [0, 1)``).
* :class:`BatchDetector` — the same model over many keys per call, for the streaming path.
* :class:`KeyedDetector` — the same over polars frames with named keys: the anomaly stream.
* :class:`DetectorPeers` — a peer reference speed per traffic detector (its segment's probes), so
  that a detector's slow drift is told apart from the city changing.
* :func:`warm_up` — compile every kernel at start-up; returns the seconds it took.
* :class:`OnnxModel` / :func:`load_model` — learned models (``models/``) scored with onnxruntime.
"""
from brain.anomaly.base import BatchScorer, OnePointDetector
from brain.anomaly.batch_detector import BatchDetector
from brain.anomaly.streaming import SeasonalDetector, default_detector, warm_up

__all__ = ["BatchDetector", "BatchScorer", "OnePointDetector", "SeasonalDetector", "default_detector", "warm_up"]
from brain.anomaly.keyed import KeyedDetector
from brain.anomaly.peers import DetectorPeers
from brain.anomaly.onnx_scorer import ModelError, OnnxModel, available_models, load_model, load_models

__all__ += ["DetectorPeers", "KeyedDetector", "ModelError", "OnnxModel", "available_models", "load_model", "load_models"]
