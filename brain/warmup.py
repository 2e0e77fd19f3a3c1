"""Compiling the numba kernels ahead of time, and knowing whether that is still to do.

Every kernel in :mod:`brain.kernels` is ``@njit(cache=True)``: the first process that calls it
compiles it (a few seconds each, minutes in all) and leaves the machine code in the package's
``__pycache__``; later processes load it in milliseconds. ``scripts/bootstrap.sh`` runs
``citybrain warm-up`` once after installing, so the first ``citybrain run`` starts in seconds; a
start that finds the cache cold says so and shows progress instead of going silent.

Example:
    >>> [label for label, _ in phases()][:3]
    ['kernels.window', 'kernels.jsonscan', 'kernels.dedup']
    >>> isinstance(kernels_cached(), bool)
    True
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Callable

KERNEL_DIR = Path(__file__).parent / "kernels"


def _stamp() -> Path:
    # Numba keys its cache on each source file; one stamp over all of them (and the Python version)
    # says whether a warm-up ran since the kernels last changed.
    digest = hashlib.sha1(sys.version.encode())
    for source in sorted(KERNEL_DIR.glob("*.py")):
        digest.update(source.name.encode() + source.read_bytes())
    return KERNEL_DIR / "__pycache__" / f"citybrain-warm-{digest.hexdigest()[:16]}.stamp"


def kernels_cached() -> bool:
    """True when a warm-up ran since the kernel sources last changed."""
    return _stamp().exists()


def forget_stale() -> int:
    """Delete numba's cached machine code of the kernels when a warm-up has not run since their
    sources changed; returns the files removed.

    Numba checks a cached function against its own source file only: a kernel that calls a kernel
    of another module keeps the callee's old code until its cache goes. So after any kernel change,
    all of it is compiled afresh.
    """
    if kernels_cached():
        return 0
    removed = 0
    for cached in (KERNEL_DIR / "__pycache__").glob("*.nb[ic]"):
        try:
            cached.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def mark_cached() -> None:
    """Record that the kernels are compiled (call after running every phase); best effort on a
    read-only install, where numba cannot cache either."""
    stamp = _stamp()
    try:
        stamp.parent.mkdir(exist_ok=True)
        for old in stamp.parent.glob("citybrain-warm-*.stamp"):
            old.unlink()
        stamp.touch()
    except OSError:
        pass


def phases() -> list[tuple[str, Callable[[], object]]]:
    """The warm-up steps in order, each ``(label, function)``; calling them all compiles every kernel
    the pipeline and the detectors call with their run-time signatures."""
    from importlib import import_module

    from brain.anomaly.streaming import warm_up as warm_up_anomaly
    from brain.pipeline import warm_up as warm_up_pipeline

    # One step per kernel module (a progress bar that moves), in the order a pipeline needs them;
    # the pipeline's and the detectors' own warm-ups then only find them compiled.
    names = ["window", "jsonscan", "dedup", "lifecycle", "cases", "freshness", "groupsum", "iaqi", "latest", "segments", "platoon", "sensorfault"]
    steps = [(f"kernels.{name}", import_module(f"brain.kernels.{name}").warm_up) for name in names]
    return [*steps, ("pipeline", warm_up_pipeline), ("anomaly detectors", warm_up_anomaly)]
