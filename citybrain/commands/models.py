"""`citybrain models …`: train the learned anomaly models, list and check model files.

`train` simulates history (`models.simhistory`, no simulator or data needed; or, with
`--source city`, the city simulator's detector readings for the segment model), fits
scikit-learn Isolation Forests, exports them to ONNX and writes a model card per model
(features, training-data hash, metrics, versions). `list` shows the models in a folder;
`check` loads each one the way the engine does (hash, features, check rows) and reports
any that would be refused.
"""
from __future__ import annotations

import json
from pathlib import Path

from citybrain.cli import UserError


def _default_dir() -> Path:
    import models.artifacts

    return models.artifacts.DIR


def register(sub) -> None:
    p = sub.add_parser("models", help="train, list and check the learned anomaly models (ONNX)",
                       description=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")

    tr = msub.add_parser("train", help="train the models on simulated history and export ONNX + model cards")
    tr.add_argument("--out", metavar="DIR", default="var/models", help="output folder (default var/models; the shipped ones are in models/artifacts)")
    tr.add_argument("--seed", type=int, default=0, help="random seed for the simulated history and the forests (default 0)")
    tr.add_argument("--days", type=float, default=7.0, help="days of simulated training history (default 7)")
    tr.add_argument("--units", type=int, default=40, help="simulated road segments (districts: half as many; default 40)")
    tr.add_argument("--trees", type=int, default=30, help="trees per forest (default 30; more = bigger .onnx, slower to load)")
    tr.add_argument("--source", choices=["generator", "city"], default="generator",
                    help="segment model training data: the built-in series generator (default, no simulator needed) "
                         "or the city simulator's detector readings (streams.sim)")
    tr.add_argument("--city", metavar="DIR", help="city folder for --source city (default: the demo city)")
    tr.add_argument("--no-progress", action="store_true", help="no progress bars")
    tr.set_defaults(func=cmd_train)

    ls = msub.add_parser("list", help="models (name, version, features, metrics) in a folder")
    ls.add_argument("--dir", metavar="DIR", help="model folder (default: the shipped models)")
    ls.add_argument("--json", action="store_true", help="print the cards as JSON")
    ls.set_defaults(func=cmd_list)

    ck = msub.add_parser("check", help="load every model as the engine would; exit 1 if any is refused")
    ck.add_argument("--dir", metavar="DIR", help="model folder (default: the shipped models)")
    ck.set_defaults(func=cmd_check)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def cmd_train(args) -> int:
    if args.days <= 0:
        raise UserError(f"--days must be positive, got {args.days}")
    if args.units < 2:
        raise UserError(f"--units must be at least 2, got {args.units}")
    if args.trees < 1:
        raise UserError(f"--trees must be at least 1, got {args.trees}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    from models.train import train_all

    segment_data = _city_segment_data(args) if args.source == "city" else None
    cards = train_all(out, seed=args.seed, days=args.days, units=args.units, progress=not args.no_progress,
                      n_estimators=args.trees, segment_data=segment_data)
    for c in cards:
        m = c["metrics"]
        auc = "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.3f}"
        print(f"{c['name']}-{c['version']}: {c['onnx_bytes']:,} bytes, ROC AUC {auc}, "
              f"ONNX vs scikit-learn max diff {m['onnx_max_abs_diff_vs_sklearn']:.1e} -> {out / c['onnx_file']}")
    return 0


def _detector_windows(traffic, truth=None, window: int = 5):
    """Per detector, consecutive ``window`` readings -> mean/std of volume, occupancy, speed (and labels)."""
    import numpy as np
    import polars as pl

    feats, labels = [], []
    spans = [] if truth is None else [(r["start_ms"], r["end_ms"], set(r["sensor_ids"]))
                                      for r in truth.filter(pl.col("type") == "accident").iter_rows(named=True)]
    for (sid,), g in traffic.sort("ts_ms").group_by(["sensor_id"], maintain_order=True):
        m = (g.height // window) * window
        if m == 0:
            continue
        cols = [g[c].cast(pl.Float64).fill_null(np.nan).to_numpy()[:m].reshape(-1, window) for c in ("volume_veh", "occupancy_pct", "speed_kmh")]
        W = np.stack(cols, axis=1)
        f = np.concatenate([np.nanmean(W, axis=2), np.nanstd(W, axis=2)], axis=1)
        ok = np.isfinite(f).all(axis=1)
        ts = g["ts_ms"].to_numpy()[:m].reshape(-1, window)
        lab = np.zeros(len(f), dtype=bool)
        for a, b, ids in spans:
            if sid in ids:
                lab |= (ts[:, -1] >= a) & (ts[:, 0] <= b)
        feats.append(f[ok])
        labels.append(lab[ok])
    return np.concatenate(feats).astype(np.float32), np.concatenate(labels)


def _city_segment_data(args):
    """Training windows from a clean simulated run; evaluation windows from a run with accidents."""
    try:
        from brain.city import CityError, demo_city_path, load_city
        from streams.sim import Simulator
    except ImportError as exc:
        raise UserError(f"--source city needs the city simulator (streams.sim): {exc}") from None
    path = Path(args.city) if args.city else demo_city_path()
    try:
        city = load_city(path)
    except CityError as exc:
        raise UserError(f"cannot load city {path}: {exc}") from None
    import math

    import polars as pl
    from tqdm.auto import tqdm

    def traffic(sim, hours, label):
        until = sim.now_ms + int(hours * 3_600_000)
        parts = [b.frames["traffic"] for b in tqdm(sim.batches(until, batch_s=3600), total=math.ceil(hours), unit="h",
                                                    desc=f"simulating {label}", disable=args.no_progress)
                 if "traffic" in b.frames]
        if not parts:
            raise UserError(f"city {path} has no traffic detectors to train the segment model on")
        return pl.concat(parts)

    X, _ = _detector_windows(traffic(Simulator(city, seed=args.seed, scenarios=[], faults=[]), args.days * 24, "clean history"))
    ev = Simulator(city, seed=args.seed + 1, faults=[])  # default scenarios: accidents to evaluate on
    X_eval, y_eval = _detector_windows(traffic(ev, max(24.0, args.days * 8), "evaluation days"), ev.ground_truth)
    desc = {"generator": "streams.sim.Simulator (citybrain models train --source city)", "city": str(path),
            "days": args.days, "seed": args.seed, "window": "5 consecutive readings of one detector"}
    return X, X_eval, y_eval, desc


def _dir(args) -> Path:
    d = Path(args.dir) if args.dir else _default_dir()
    if not d.is_dir():
        raise UserError(f"model folder {d} does not exist")
    return d


def cmd_list(args) -> int:
    from brain.anomaly import available_models

    d = _dir(args)
    cards = []
    for name, version in available_models(d):
        try:
            cards.append(json.loads((d / f"{name}-{version}.json").read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise UserError(f"unreadable model card {name}-{version}.json: {exc}") from None
    if args.json:
        print(json.dumps(cards, indent=1))
        return 0
    if not cards:
        print(f"no models in {d}")
        return 0
    for c in cards:
        auc = c.get("metrics", {}).get("roc_auc")
        print(f"{c.get('name')} v{c.get('version')}  features: {', '.join(c.get('features', []))}  "
              f"ROC AUC: {'n/a' if auc is None else f'{auc:.3f}'}  trained: {c.get('created')}")
    return 0


def cmd_check(args) -> int:
    from brain.anomaly import available_models, load_models

    d = _dir(args)
    specs = available_models(d)
    models, errors = load_models(specs, d)
    for name in models:
        print(f"ok      {name} v{models[name].version}")
    for e in errors:
        print(f"REFUSED {e}")
    if not specs:
        print(f"no models in {d}")
    return 1 if errors else 0
