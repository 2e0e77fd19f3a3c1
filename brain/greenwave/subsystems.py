"""Where to split a long corridor into coordinated subsystems, judged by the platoon delay model.

A long corridor's two-way band is limited by its worst-fitting stretch: one 30-signal band is
often a few seconds wide while the same corridor cut in three carries bands two or three times
as wide inside each part, and pays with one stop (or a slowed platoon) at each cut. Which is
better depends on where the cuts fall, so :func:`split_subsystems` decides it by modelled delay:
greedily, it tries every cut of every subsystem (each side at least ``min_size`` signals), gives
each side its own MAXBAND optimum, places the right-hand side's band against the left's by the
model (every shift on a ``step`` grid), and keeps the cut that lowers the modelled objective most
(delay plus stop loss, the worse direction's stops per vehicle bounded). It stops when no cut
gains ``min_gain`` of the objective. The result is a start for the offset descent
(:func:`brain.greenwave.delay.delay_offsets`), so the descent begins from bands the single-band
optimum cannot offer; ``cuts`` (index of the first signal of each later subsystem) is what the
plan reports as its subsystems.

A cut is also what the coordinate descent cannot make by itself: it moves one signal's offset at
a time, while a cut shifts a whole tail of the corridor at once.

Example:
    >>> import numpy as np
    >>> from brain.kernels import platoon as K
    >>> nb, n = 60, 12
    >>> prm = K.example_params(n, nb=nb, link_bins=25.0)
    >>> prm[K.P_LINK_OUT, 5] = prm[K.P_LINK_IN, 6] = 47.0    # one long link breaks the wave
    >>> g = np.full(n, 30.0)
    >>> t = np.concatenate([[0.0], np.cumsum(prm[K.P_LINK_OUT, :-1])])
    >>> res = split_subsystems(nb, 1.0, prm, (60.0, g, g, np.zeros(n), t, -t, 1.0, 0.5), 1e9, 6.0)
    >>> res.objective <= res.single_objective
    True
    >>> all(4 <= c <= n - 4 for c in res.cuts)
    True
"""
from __future__ import annotations

import msgspec
import numpy as np

from brain.kernels import platoon as K
from brain.kernels.bandwidth import max_bandwidth
from brain.kernels.platoon_shift import shift_objectives

#: Least share of the objective a cut must save: below it a cut is noise the model cannot resolve.
MIN_CUT_GAIN = 0.01
#: Fewest signals in a subsystem: a band over fewer is no coordination worth the name.
MIN_SUBSYSTEM = 4


class SplitResult(msgspec.Struct):
    """Green starts (bins, outbound coordinated green) of the subsystem plan and where it is cut.

    ``cuts`` lists the first signal (corridor index) of every subsystem after the first, sorted;
    ``objective`` / ``single_objective`` are the model's objective (bins of delay per cycle and
    lane, stop losses included) of this plan and of the whole-corridor MAXBAND plan.
    Example: see the module docstring.
    """

    u: np.ndarray
    cuts: list[int]
    objective: float
    single_objective: float


def _objective(nb, u, prm, stop_bound, loss) -> float:
    tot = K.corridor_delay(nb, u, prm)
    return float(K._objective(tot[K.T_DELAY_OUT], tot[K.T_DELAY_IN], tot[K.T_STOPS_OUT], tot[K.T_STOPS_IN],
                              tot[K.T_VEH_OUT], tot[K.T_VEH_IN], stop_bound, loss))


def _band_starts(prob_args, lo: int, hi: int, bin_s: float, nb: int) -> np.ndarray:
    """MAXBAND green starts (bins) of signals ``lo..hi-1`` alone, the first at 0."""
    C, g_out, g_in, shift, t_out, t_in, wo, wi = prob_args
    _, st = max_bandwidth(C, g_out[lo:hi], g_in[lo:hi], shift[lo:hi], t_out[lo:hi], t_in[lo:hi], wo, wi, 0)
    return np.array([int(round((x - st[0]) / bin_s)) % nb for x in st], dtype=np.int64)


def split_subsystems(nb: int, bin_s: float, prm: np.ndarray, prob_args: tuple, stop_bound: float, loss: float,
                     *, min_size: int = MIN_SUBSYSTEM, step: int = 2, min_gain: float = MIN_CUT_GAIN,
                     max_cuts: int | None = None) -> SplitResult:
    """Greedy subsystem cuts (see the module docstring). ``prob_args`` is
    :meth:`brain.greenwave.band.BandProblem.args`; ``stop_bound``, ``loss`` as for
    :func:`brain.kernels.platoon.descend_offsets`."""
    n = prm.shape[1]
    starts: dict[tuple[int, int], np.ndarray] = {}  # a stretch's own MAXBAND starts: the same in every round

    def band(lo: int, hi: int) -> np.ndarray:
        if (lo, hi) not in starts:
            starts[lo, hi] = _band_starts(prob_args, lo, hi, bin_s, nb)
        return starts[lo, hi]

    u = band(0, n)
    single = best = _objective(nb, u, prm, stop_bound, loss)
    cuts: list[int] = []
    limit = max_cuts if max_cuts is not None else n // min_size
    while len(cuts) < limit:
        bounds = [0] + cuts + [n]
        found = None
        for a, b in zip(bounds[:-1], bounds[1:]):
            for c in range(a + min_size, b - min_size + 1):
                left = band(a, c)
                right = band(c, b)
                trial = u.copy()
                trial[a:c] = (left + u[a]) % nb  # the left part keeps its place against what precedes it
                # what follows b moves with the right part, so its own alignment is kept
                tail = u[b:] - u[c]
                objs = shift_objectives(nb, trial.copy(), prm, c, right, tail, step, stop_bound, loss)
                for j, s in enumerate(range(0, nb, max(step, 1))):
                    obj = float(objs[j])
                    if obj < best - 1e-9 and (found is None or obj < found[0]):
                        trial[c:b] = (right + s) % nb
                        trial[b:] = (tail + s) % nb
                        found = (obj, c, trial.copy())
        if found is None or found[0] > best * (1.0 - min_gain):
            break
        best, c, u = found
        cuts = sorted(cuts + [c])
    return SplitResult(u=u, cuts=cuts, objective=best, single_objective=single)
