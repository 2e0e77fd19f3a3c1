"""The subsystem cut's trials in one kernel: a corridor's tail moved against its head, every shift.

:func:`brain.greenwave.subsystems.split_subsystems` tries, for each cut ``c``, every shift of the
signals from ``c`` on against those before it, and judges each by the platoon model's objective
(:mod:`brain.kernels.platoon`). Called once per cut instead of once per shift, and the outbound
stop lines before the cut (which no shift moves) run once: the same numbers as a whole
:func:`brain.kernels.platoon.corridor_delay` per shift, at about half the work and none of the
per-call overhead. :func:`shift_objectives_ref` is the plain-Python twin the tests hold equal.

Example:
    >>> import numpy as np
    >>> from brain.kernels import platoon as K
    >>> prm = K.example_params(6, nb=40, link_bins=12.0)
    >>> trial = np.zeros(6, dtype=np.int64)
    >>> head, tail = np.array([0, 3], dtype=np.int64), np.array([5, 9], dtype=np.int64)
    >>> got = shift_objectives(40, trial.copy(), prm, 2, head, tail, 4, 1e9, 6.0)
    >>> bool(np.allclose(got, shift_objectives_ref(40, trial, prm, 2, head, tail, 4, 1e9, 6.0)))
    True
"""
from __future__ import annotations

import numpy as np
from numba import njit

from brain.kernels.platoon import (_direction, _entry_profiles, _objective, _objective_ref, _vehicles,
                                   corridor_delay_ref)


@njit(cache=True)
def shift_objectives(nb, trial, prm, c, head, tail, step, stop_bound, stop_loss):
    """The descent's objective (:func:`_objective`, totals as :func:`corridor_delay`) of ``trial``
    with its signals from ``c`` on moved together, for every shift ``s`` in ``range(0, nb, step)``:
    ``trial[c:c + len(head)] = (head + s) % nb`` and the rest ``(tail + s) % nb``. What
    :mod:`brain.greenwave.subsystems` tries for each cut; the outbound stop lines before ``c`` do
    not move, so they run once (same numbers as a whole :func:`corridor_delay` per shift).
    ``trial`` is modified (left at the last shift)."""
    n = trial.shape[0]
    po = np.zeros((n, nb))
    pi = np.zeros((n, nb))
    do = np.zeros(n)
    so = np.zeros(n)
    di = np.zeros(n)
    si = np.zeros(n)
    buf = np.zeros(nb)
    nxt = np.zeros(nb)
    _entry_profiles(nb, prm, po, pi)
    v_out = _vehicles(nb, prm, False)
    v_in = _vehicles(nb, prm, True)
    st = max(step, 1)
    out = np.empty((nb + st - 1) // st)
    nh = head.shape[0]
    j = 0
    for s in range(0, nb, st):
        for k in range(nh):
            trial[c + k] = (head[k] + s) % nb
        for k in range(tail.shape[0]):
            trial[c + nh + k] = (tail[k] + s) % nb
        _direction(nb, trial, prm, False, 0 if j == 0 else c, po, do, so, buf, nxt)
        _direction(nb, trial, prm, True, 0, pi, di, si, buf, nxt)
        out[j] = _objective(do.sum(), di.sum(), so.sum(), si.sum(), v_out, v_in, stop_bound, stop_loss)
        j += 1
    return out


def shift_objectives_ref(nb, trial, prm, c, head, tail, step, stop_bound, stop_loss):
    """Plain-Python twin of :func:`shift_objectives` (a whole corridor evaluation per shift)."""
    trial = np.array(trial, dtype=np.int64).copy()
    out = []
    for s in range(0, nb, max(step, 1)):
        trial[c:c + len(head)] = (np.asarray(head) + s) % nb
        trial[c + len(head):] = (np.asarray(tail, dtype=np.int64) + s) % nb
        out.append(_objective_ref(corridor_delay_ref(nb, trial, prm), stop_bound, stop_loss))
    return np.array(out)


def warm_up() -> None:
    """Compile the kernel (first call) so plan latency excludes it."""
    from brain.kernels.platoon import example_params

    z = np.zeros(1, dtype=np.int64)
    shift_objectives(20, np.zeros(3, dtype=np.int64), example_params(3, nb=20, link_bins=5.0), 1, z, z, 2, 1e9, 4.0)
