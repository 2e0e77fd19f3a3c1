"""The bandwidth problem of a corridor: the arrays the MAXBAND kernel takes, for a cycle and splits.

Shared by the optimizer (which solves it) and the safety checker (which re-measures the bands a
plan advertises), so neither imports the other.

Example:
    >>> import numpy as np
    >>> from brain.greenwave.model import CorridorSpec, IntersectionSpec, PhaseSpec
    >>> ph = [PhaseSpec(name="EW", min_green_s=20, coordinated=True), PhaseSpec(name="NS", min_green_s=20)]
    >>> spec = CorridorSpec(id="C", intersections=[IntersectionSpec(id="A", position_m=0, phases=ph),
    ...                                            IntersectionSpec(id="B", position_m=300, phases=ph)])
    >>> prob = band_problem(spec, 60.0, [np.array([25.0, 25.0])] * 2)
    >>> prob.green_out_s.tolist(), prob.in_shift_s.tolist()
    ([25.0, 25.0], [0.0, 0.0])
    >>> demand_weights(900, 300)
    (1.0, 0.3333333333333333)
"""
from __future__ import annotations

import msgspec
import numpy as np

from brain.greenwave.model import CorridorSpec


class BandProblem(msgspec.Struct):
    """The arrays the bandwidth kernel takes (s), for a given cycle and splits.

    Example: see the module docstring (``band_problem`` builds one).
    """

    cycle_s: float
    green_out_s: np.ndarray
    green_in_s: np.ndarray
    in_shift_s: np.ndarray
    travel_out_s: np.ndarray
    travel_in_s: np.ndarray
    weight_out: float
    weight_in: float

    def args(self) -> tuple:
        return (self.cycle_s, self.green_out_s, self.green_in_s, self.in_shift_s,
                self.travel_out_s, self.travel_in_s, self.weight_out, self.weight_in)


def demand_weights(volume_out_vph: float | None, volume_in_vph: float | None) -> tuple[float, float]:
    """MAXBAND's weights (1, k) with k = inbound / outbound volume, scaled so the larger is 1."""
    if volume_out_vph is None or volume_in_vph is None:
        return 1.0, 1.0
    top = max(volume_out_vph, volume_in_vph)
    if top <= 0:
        return 1.0, 1.0
    return volume_out_vph / top, volume_in_vph / top


def phase_shift_s(it, greens_s: np.ndarray, from_k: int, to_k: int) -> float:
    """Local start of phase ``to_k``'s green after phase ``from_k``'s, walking the ring (s)."""
    t, k = 0.0, from_k
    while k != to_k:
        t += greens_s[k] + it.phases[k].clearance_s
        k = (k + 1) % len(it.phases)
    return t


def band_problem(spec: CorridorSpec, cycle_s: float, greens_s: list[np.ndarray]) -> BandProblem:
    n = spec.n
    g_out = np.empty(n)
    g_in = np.empty(n)
    shift = np.empty(n)
    for i, it in enumerate(spec.intersections):
        ko, ki = it.phase_index("out"), it.phase_index("in")
        g = greens_s[i]
        g_out[i], g_in[i] = g[ko], g[ki]
        shift[i] = phase_shift_s(it, g, ko, ki)
    wo, wi = demand_weights(spec.volume_out_vph, spec.volume_in_vph)
    return BandProblem(cycle_s, g_out, g_in, shift, spec.travel_out_s(), spec.travel_in_s(), wo, wi)
