"""Learned anomaly models served with onnxruntime: load by name and version, score batches.

A model is two files side by side in a model directory: ``<name>-<version>.onnx`` and its model
card ``<name>-<version>.json`` (written by ``citybrain models train``; the shipped ones live in
``models/artifacts``). Loading checks that the card belongs to the file (SHA-256), that the
feature list matches the model's input width and that the card's own check rows score as
recorded, so a stale, truncated or swapped file is refused with a clear :class:`ModelError`
instead of scoring garbage. :func:`load_models` loads several and reports failures instead of
raising, so the engine keeps running on the numba detectors when a model is missing.

Scores are the Isolation Forest anomaly score of Liu et al. (2008), ``s(x) in (0, 1]``: about
0.5 and below is ordinary, close to 1 is isolated quickly (anomalous); the card's
``threshold`` is the score exceeded by 0.5% of the training windows.

Example:
    >>> import tempfile
    >>> try:
    ...     load_model("segment_iforest", "9.9", tempfile.gettempdir())
    ... except ModelError as exc:
    ...     print(str(exc).split(":")[0])
    model segment_iforest version 9.9 not found in ...
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_NAME = re.compile(r"^[a-z0-9_]+$")
_VERSION = re.compile(r"^\d+(\.\d+)*$")


class ModelError(ValueError):
    """A model cannot be used: missing, mismatched with its card, or fed the wrong features.

    Example:
        >>> isinstance(ModelError("model x version 1 not found"), ValueError)
        True
    """


@dataclass(frozen=True)
class OnnxModel:
    """A loaded model: ``score_many(X)`` gives one anomaly score in ``(0, 1]`` per row of ``X``.

    ``features`` names the columns of ``X`` in order; ``card`` is the whole model card. The verbs are
    those of :mod:`brain.anomaly.base`; the model is trained offline (``models/train.py``), so
    ``learns_online`` is False and :meth:`learn_many` / :meth:`score_learn_many` refuse with a
    :class:`ModelError` instead of silently learning nothing.

    Example (the shipped models live in the ``models.artifacts`` package):
        >>> import numpy as np, models.artifacts
        >>> m = load_model("segment_iforest", "1", models.artifacts.DIR)
        >>> m.features[:3]
        ('volume_mean', 'occupancy_mean', 'speed_mean')
        >>> normal, jammed = m.score_many(np.array([[40, 14, 50, 6, 2, 2.5], [12, 45, 12, 4, 9, 6]]))
        >>> bool(normal < m.threshold <= jammed)
        True
        >>> m.learn_many(np.zeros((1, 6)))
        Traceback (most recent call last):
        ...
        brain.anomaly.onnx_scorer.ModelError: model segment_iforest 1 is trained offline (models/train.py): it does not learn online
    """

    learns_online = False

    name: str
    version: str
    features: tuple[str, ...]
    threshold: float
    card: dict
    _session: object
    _input: str
    _offset: float

    def score(self, X) -> np.ndarray:
        """Anomaly scores for a batch ``X`` of shape ``(n, len(features))``; NaN rows score NaN."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != len(self.features):
            raise ModelError(
                f"model {self.name} {self.version} expects a 2-D batch with {len(self.features)} columns "
                f"({', '.join(self.features)}), got shape {X.shape}"
            )
        out = np.full(X.shape[0], np.nan)
        ok = np.isfinite(X).all(axis=1)
        if ok.any():
            decision = self._session.run(["scores"], {self._input: np.ascontiguousarray(X[ok])})[0].ravel()
            # decision_function = score_samples - offset_, and score_samples = -s(x)
            out[ok] = -(decision.astype(np.float64) + self._offset)
        return out

    def score_many(self, X) -> np.ndarray:
        """:meth:`score` (the protocol's name for it)."""
        return self.score(X)

    def learn_many(self, X) -> "OnnxModel":
        """Refused: the model is trained offline."""
        raise ModelError(f"model {self.name} {self.version} is trained offline (models/train.py): it does not learn online")

    def score_learn_many(self, X) -> np.ndarray:
        """Refused: the model is trained offline (use :meth:`score_many`)."""
        return self.learn_many(X)

    def flags(self, X) -> np.ndarray:
        """Rows whose score reaches the card's threshold."""
        return self.score(X) >= self.threshold


def _paths(name: str, version: str, directory) -> tuple[Path, Path]:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ModelError(f"bad model name {name!r}: use lower-case letters, digits and _")
    if not isinstance(version, str) or not _VERSION.match(version):
        raise ModelError(f"bad model version {version!r}: use digits and dots, e.g. '1' or '1.2'")
    d = Path(directory)
    return d / f"{name}-{version}.onnx", d / f"{name}-{version}.json"


def available_models(directory) -> list[tuple[str, str]]:
    """``(name, version)`` of every model card in ``directory``, sorted."""
    out = []
    for card in sorted(Path(directory).glob("*-*.json")):
        name, _, version = card.stem.rpartition("-")
        if _NAME.match(name) and _VERSION.match(version):
            out.append((name, version))
    return out


def load_model(name: str, version: str | None, directory) -> OnnxModel:
    """Load ``name`` at ``version`` (None: the highest version present) from ``directory``."""
    if version is None:
        versions = [v for n, v in available_models(directory) if n == name]
        if not versions:
            raise ModelError(f"model {name} not found in {directory} (no {name}-<version>.json card)")
        version = max(versions, key=lambda v: tuple(int(p) for p in v.split(".")))
    onnx_path, card_path = _paths(name, version, directory)
    if not card_path.is_file() or not onnx_path.is_file():
        missing = ", ".join(p.name for p in (onnx_path, card_path) if not p.is_file())
        raise ModelError(f"model {name} version {version} not found in {directory}: missing {missing}")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"model card {card_path} is not readable JSON: {exc}") from None
    for key in ("name", "version", "features", "onnx_sha256", "score_offset", "threshold", "check"):
        if key not in card:
            raise ModelError(f"model card {card_path} lacks {key!r}")
    if card["name"] != name or str(card["version"]) != version:
        raise ModelError(f"model card {card_path} is for {card['name']} {card['version']}, not {name} {version}")
    blob = onnx_path.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != card["onnx_sha256"]:
        raise ModelError(
            f"{onnx_path.name} does not match its model card (sha256 {digest[:12]}... vs {str(card['onnx_sha256'])[:12]}...): "
            "retrain with `citybrain models train` or restore the file"
        )
    import onnxruntime as ort  # imported here so the numba detectors never pay for it

    try:
        session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(f"onnxruntime cannot load {onnx_path.name}: {exc}") from None
    inputs = session.get_inputs()
    width = inputs[0].shape[1] if len(inputs) == 1 and len(inputs[0].shape) == 2 else None
    if width != len(card["features"]):
        raise ModelError(f"{onnx_path.name} takes {width} features but its card lists {len(card['features'])}")
    model = OnnxModel(
        name=name,
        version=version,
        features=tuple(card["features"]),
        threshold=float(card["threshold"]),
        card=card,
        _session=session,
        _input=inputs[0].name,
        _offset=float(card["score_offset"]),
    )
    check_X = np.asarray(card["check"]["X"], dtype=np.float32)
    want = np.asarray(card["check"]["score"], dtype=np.float64)
    got = model.score(check_X)
    if got.shape != want.shape or not np.allclose(got, want, atol=1e-4):
        raise ModelError(f"{onnx_path.name} does not reproduce the check scores in its card")
    return model


def load_models(specs, directory) -> tuple[dict[str, OnnxModel], list[str]]:
    """Load several ``(name, version-or-None)`` models; returns ``(models by name, error messages)``.

    Never raises for a bad model: the engine logs the errors and runs on without those models.
    """
    models: dict[str, OnnxModel] = {}
    errors: list[str] = []
    for name, version in specs:
        try:
            models[name] = load_model(name, version, directory)
        except ModelError as exc:
            errors.append(str(exc))
    return models, errors
