"""What changed between two states made of named arrays, bit for bit: a checkpoint's delta.

The anomaly detector's state is a few large arrays (a 50k-sensor city: ~170 MB) of which a tick
changes a small part: each key's scalars, and one seasonal bin per key. A checkpoint can then hold
a *base* (the whole state, written rarely) and a *delta* against it: per array the positions and
new values of the elements that differ (compared as raw bits, so NaN equals NaN and -0.0 differs
from 0.0), the rows appended since (new keys), or the whole array when that is smaller or its
shape changed. :func:`apply_delta` rebuilds the state exactly.

Example:
    >>> import numpy as np
    >>> base = {"S": np.zeros((3, 2)), "k": np.array([1, 2], np.int64)}
    >>> now = {"S": np.array([[0.0, 0.0], [0.0, 5.0], [0.0, 0.0], [7.0, 7.0]]), "k": np.array([1, 2, 3], np.int64)}
    >>> delta = diff_arrays(base, now)
    >>> sorted(delta)
    ['S.at', 'S.new', 'S.rows', 'S.values', 'k.at', 'k.new', 'k.rows', 'k.values']
    >>> delta["S.at"].tolist(), delta["S.new"].tolist(), delta["S.values"].tolist()  # S[1, 1] changed, a row added
    ([3], [5.0], [[7.0, 7.0]])
    >>> back = apply_delta(base, delta)
    >>> all(np.array_equal(back[n], now[n]) for n in now), delta_nbytes(delta) < sum(a.nbytes for a in now.values())
    (True, True)
"""
from __future__ import annotations

import numpy as np


def _bits(a: np.ndarray) -> np.ndarray:
    """``a`` (C-contiguous) flat, as unsigned integers of its item size: equal bits compare equal."""
    return np.ascontiguousarray(a).reshape(-1).view(np.dtype(f"u{a.dtype.itemsize}"))


def diff_arrays(base: dict[str, np.ndarray], now: dict[str, np.ndarray], whole_share: float = 0.5) -> dict[str, np.ndarray]:
    """The arrays that turn ``base`` into ``now`` (see the module docstring): for each array of ``now``,
    either ``<name>.whole``, or ``<name>.at`` / ``<name>.new`` (flat positions among the base's
    elements and their new values) with ``<name>.rows`` (the rows after the base's, when ``now`` has
    more) and ``<name>.values`` (those rows). An array whose changed elements would take more than
    ``whole_share`` of its own size is written whole."""
    out: dict[str, np.ndarray] = {}
    for name, a in now.items():
        b = base.get(name)
        if b is None or b.dtype != a.dtype or b.shape[1:] != a.shape[1:] or a.shape[0] < b.shape[0]:
            out[f"{name}.whole"] = a
            continue
        n_old = b.shape[0]
        changed = np.flatnonzero(_bits(a[:n_old]) != _bits(b))
        if changed.size * (8 + a.dtype.itemsize) > whole_share * a.nbytes:
            out[f"{name}.whole"] = a
            continue
        out[f"{name}.at"] = changed
        out[f"{name}.new"] = np.ascontiguousarray(a[:n_old]).reshape(-1)[changed]
        if a.shape[0] > n_old:
            out[f"{name}.rows"] = np.array([n_old], dtype=np.int64)
            out[f"{name}.values"] = a[n_old:]
    return out


def apply_delta(base: dict[str, np.ndarray], delta: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``base`` with :func:`diff_arrays`' ``delta`` applied: new arrays (``base`` is left as it is); an
    array the delta does not name is the base's (an empty delta: the base itself)."""
    names = {key.rsplit(".", 1)[0] for key in delta}
    out = {name: np.array(a, copy=True) for name, a in base.items() if name not in names}
    for name in sorted(names):
        if f"{name}.whole" in delta:
            out[name] = np.array(delta[f"{name}.whole"], copy=True)
            continue
        b = base.get(name)
        if b is None or f"{name}.at" not in delta:
            raise ValueError(f"delta of array {name!r} has no base to apply to")
        at, new = delta[f"{name}.at"], delta[f"{name}.new"]
        if at.size and (at.min() < 0 or at.max() >= b.size):
            raise ValueError(f"delta of array {name!r} points outside its base")
        a = np.array(b, copy=True)
        a.reshape(-1)[at] = new
        if f"{name}.values" in delta:
            a = np.concatenate([a, delta[f"{name}.values"].reshape((-1,) + b.shape[1:])])
        out[name] = a
    return out


def delta_nbytes(delta: dict[str, np.ndarray]) -> int:
    """Bytes the delta's arrays take."""
    return sum(a.nbytes for a in delta.values())
