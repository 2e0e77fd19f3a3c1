"""Train the learned anomaly models on simulated history and export them to ONNX with model cards.

Models (both scikit-learn ``IsolationForest``, converted with skl2onnx, scored at run time by
:mod:`brain.anomaly.onnx_scorer`):

* ``segment_iforest`` — one road segment's 5-minute window: mean and std of volume (veh per
  minute), occupancy (%) and speed (km/h). Flags windows whose combination is unusual
  (an accident: speed collapses while occupancy rises) even when each value alone is plausible.
* ``district_iforest`` — one district's hourly vital-sign vector: mean speed, PM2.5, grid cases
  per hour, water pressure, power load, plus the hour of day (sin, cos) so "normal" depends on
  the time of day.

Training data come from :mod:`models.simhistory` (no simulator needed): ``days`` of clean
history for many sensors; the metrics in the card come from a separate simulated period with
injected scenarios. The card records the features, the SHA-256 of the training matrix and of the
ONNX file, the metrics, library versions, the score offset, an alert threshold and a few check
rows with their scikit-learn scores (the loader re-scores them).

Example (tiny, to show the call):
    >>> import tempfile
    >>> cards = train_all(tempfile.mkdtemp(), seed=1, days=1.0, units=4, progress=False, n_estimators=5)
    >>> sorted(c["name"] for c in cards), cards[0]["features"][:2]
    (['district_iforest', 'segment_iforest'], ['volume_mean', 'occupancy_mean'])
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from models.simhistory import SEGMENT_FEATURES, make_series, segment_windows

VERSION = "1"
DISTRICT_FEATURES = ("speed_kmh_mean", "pm25_ugm3_mean", "cases_per_h", "pressure_kpa_mean", "load_kw_mean", "hour_sin", "hour_cos")
_DISTRICT_KINDS = ("speed_kmh", "pm25_ugm3", "cases", "pressure_kpa", "load_kw")
_DISTRICT_EVENTS = {"speed_kmh": "accident", "pm25_ugm3": "pollution_episode", "pressure_kpa": "burst", "cases": "level_shift", "load_kw": "spike"}


def district_vectors(days: float, n_districts: int, seed: int = 0, anomaly_fraction: float = 0.0):
    """Hourly district vital-sign vectors ``(X float32 (n, 7), is_anomaly bool)`` from 5-minute series."""
    rng = np.random.default_rng(seed)
    feats, labels = [], []
    step_s = 300
    per_h = 12
    for _ in range(n_districts):
        sc = float(rng.uniform(0.7, 1.3))
        cols, lab = [], None
        hit = rng.random() < anomaly_fraction
        which = _DISTRICT_KINDS[int(rng.integers(len(_DISTRICT_KINDS)))]
        day = float(rng.uniform(0.2, days - 0.4)) if days > 0.6 else 0.2
        for j, kind in enumerate(_DISTRICT_KINDS):
            ev = [(_DISTRICT_EVENTS[kind], day)] if hit and kind == which else []
            s = make_series(kind, days, step_s, seed=int(rng.integers(0, 2**31)) + j, events=ev, scale=sc)
            m = (s.values.size // per_h) * per_h
            v = s.values[:m].reshape(-1, per_h)
            cols.append(np.nansum(v, axis=1) if kind == "cases" else np.nanmean(v, axis=1))
            lab = (s.label[:m].reshape(-1, per_h) > 0).any(axis=1) if lab is None else lab | (s.label[:m].reshape(-1, per_h) > 0).any(axis=1)
            ts = s.ts_ms[:m:per_h]
        hour = (ts % 86_400_000) / 3_600_000.0
        cols += [np.sin(2 * np.pi * hour / 24), np.cos(2 * np.pi * hour / 24)]
        feats.append(np.stack(cols, axis=1))
        labels.append(lab)
    return np.concatenate(feats).astype(np.float32), np.concatenate(labels)


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import skl2onnx
    import sklearn

    return {"scikit-learn": sklearn.__version__, "skl2onnx": skl2onnx.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "numpy": np.__version__}


def fit_and_export(name, features, X_train, X_eval, y_eval, out_dir: Path, seed, n_estimators, data_desc, bar=None):
    """Fit one IsolationForest, write ``<name>-<VERSION>.onnx/.json/.md`` into ``out_dir``; returns ``(card, model)``."""
    if bar is None:
        bar = tqdm(disable=True)
    from skl2onnx import to_onnx
    from sklearn.ensemble import IsolationForest
    from sklearn.metrics import average_precision_score, roc_auc_score

    model = IsolationForest(n_estimators=n_estimators, max_samples=min(256, len(X_train)), random_state=seed)
    model.fit(X_train)
    bar.update(1)
    onx = to_onnx(model, X_train[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    blob = onx.SerializeToString()
    onnx_path = out_dir / f"{name}-{VERSION}.onnx"
    onnx_path.write_bytes(blob)
    bar.update(1)

    s_train = -model.score_samples(X_train)
    s_eval = -model.score_samples(X_eval)
    threshold = float(np.quantile(s_train, 0.995))
    flagged = s_eval >= threshold
    tp = int((flagged & y_eval).sum())
    metrics = {
        "eval_windows": int(len(y_eval)),
        "eval_anomalous_windows": int(y_eval.sum()),
        "roc_auc": float(roc_auc_score(y_eval, s_eval)) if 0 < y_eval.sum() < len(y_eval) else None,
        "average_precision": float(average_precision_score(y_eval, s_eval)) if y_eval.sum() else None,
        "precision_at_threshold": tp / int(flagged.sum()) if flagged.sum() else None,
        "recall_at_threshold": tp / int(y_eval.sum()) if y_eval.sum() else None,
        "clean_windows_flagged": float(flagged[~y_eval].mean()) if (~y_eval).any() else None,
    }
    import onnxruntime as ort

    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    onnx_dec = sess.run(["scores"], {sess.get_inputs()[0].name: X_eval})[0].ravel()
    metrics["onnx_max_abs_diff_vs_sklearn"] = float(np.max(np.abs(-(onnx_dec + model.offset_) - s_eval)))
    check_idx = np.r_[np.argsort(s_eval)[:3], np.argsort(s_eval)[-3:]]
    card = {
        "name": name,
        "version": VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "kind": "IsolationForest (scikit-learn) exported to ONNX (skl2onnx)",
        "features": list(features),
        "score": "Isolation Forest anomaly score s(x) in (0, 1]; higher = more anomalous",
        "score_offset": float(model.offset_),
        "threshold": threshold,
        "threshold_rule": "99.5th percentile of the training windows' scores",
        "params": {"n_estimators": n_estimators, "max_samples": int(model.max_samples_), "random_state": seed},
        "training_data": data_desc | {"rows": int(len(X_train)), "sha256": hashlib.sha256(np.ascontiguousarray(X_train).tobytes()).hexdigest()},
        "metrics": metrics,
        "onnx_file": onnx_path.name,
        "onnx_sha256": hashlib.sha256(blob).hexdigest(),
        "onnx_bytes": len(blob),
        "onnx_opset": {"": 17, "ai.onnx.ml": 3},
        "versions": _versions(),
        "check": {"X": X_eval[check_idx].astype(float).tolist(), "score": s_eval[check_idx].tolist()},
    }
    (out_dir / f"{name}-{VERSION}.json").write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    (out_dir / f"{name}-{VERSION}.md").write_text(_card_markdown(card), encoding="utf-8")
    bar.update(1)
    return card, model


def _card_markdown(card: dict) -> str:
    m = card["metrics"]

    def f(v):
        return "n/a" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = [
        f"# Model card: {card['name']} v{card['version']}",
        "",
        f"{card['kind']}. Created {card['created']}. File `{card['onnx_file']}` ({card['onnx_bytes']:,} bytes, sha256 `{card['onnx_sha256'][:16]}…`).",
        "",
        "## Features (input columns, in order)",
        "",
        *[f"{i + 1}. `{name}`" for i, name in enumerate(card["features"])],
        "",
        "## Score",
        "",
        f"{card['score']}. Alert threshold {card['threshold']:.4f} ({card['threshold_rule']}).",
        "",
        "## Training data",
        "",
        *[f"- {k}: {v}" for k, v in card["training_data"].items()],
        "",
        "## Metrics (separate simulated period with injected scenarios)",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {k} | {f(v)} |" for k, v in m.items()],
        "",
        "## Versions",
        "",
        ", ".join(f"{k} {v}" for k, v in card["versions"].items()),
        "",
        "The JSON card next to this file is what the loader checks (hash, features, check rows).",
        "",
    ]
    return "\n".join(lines)


def train_all(out_dir, seed: int = 0, days: float = 7.0, units: int = 40, progress: bool = True, n_estimators: int = 30,
              segment_data: tuple | None = None) -> list[dict]:
    """Train and export both models into ``out_dir``; returns their model cards.

    ``units`` is the number of simulated segments (and half as many districts); ``days`` of
    clean history train, a further simulated period with injected scenarios evaluates.
    ``segment_data`` replaces the generated segment windows with other ones (for example from the
    city simulator): ``(X_train, X_eval, y_eval, description dict)`` with :data:`SEGMENT_FEATURES`
    columns.
    """
    if days <= 0 or units < 2 or n_estimators < 1:
        raise ValueError("days must be > 0, units >= 2 and n_estimators >= 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cards = []
    with tqdm(total=4, desc="simulating history", unit="set", disable=not progress) as bar:
        if segment_data is None:
            Xs, _ = segment_windows(days, units, seed=seed)
            bar.update(1)
            Xs_eval, ys_eval = segment_windows(max(2.0, days / 3), max(2, units // 2), seed=seed + 1, anomaly_fraction=0.8)
            bar.update(1)
            seg_desc = {"generator": "models.simhistory.segment_windows", "days": days, "segments": units, "seed": seed, "window": "5 x 1 min"}
        else:
            Xs, Xs_eval, ys_eval, seg_desc = segment_data
            Xs, Xs_eval = np.asarray(Xs, dtype=np.float32), np.asarray(Xs_eval, dtype=np.float32)
            ys_eval = np.asarray(ys_eval, dtype=bool)
            if Xs.ndim != 2 or Xs.shape[1] != len(SEGMENT_FEATURES) or Xs_eval.shape[1:] != Xs.shape[1:] or len(ys_eval) != len(Xs_eval):
                raise ValueError(f"segment_data must hold (n, {len(SEGMENT_FEATURES)}) matrices and one label per eval row")
            bar.update(2)
        n_d = max(2, units // 2)
        Xd, _ = district_vectors(days, n_d, seed=seed + 2)
        bar.update(1)
        Xd_eval, yd_eval = district_vectors(max(2.0, days / 3), n_d, seed=seed + 3, anomaly_fraction=0.8)
        bar.update(1)
    with tqdm(total=6, desc="training + exporting", unit="step", disable=not progress) as bar:
        cards.append(fit_and_export("segment_iforest", SEGMENT_FEATURES, Xs, Xs_eval, ys_eval, out, seed, n_estimators, seg_desc, bar)[0])
        cards.append(fit_and_export("district_iforest", DISTRICT_FEATURES, Xd, Xd_eval, yd_eval, out, seed, n_estimators,
                                     {"generator": "models.train.district_vectors", "days": days, "districts": n_d, "seed": seed, "window": "1 h of 5-min series"}, bar)[0])
    return cards
