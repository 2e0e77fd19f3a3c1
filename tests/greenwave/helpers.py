"""Random corridors for the green-wave tests."""
from __future__ import annotations

import numpy as np

from brain.greenwave.model import CorridorSpec, IntersectionSpec, PhaseSpec


def random_problem(rng: np.random.Generator, n: int, symmetric: bool | None = None):
    """Kernel arrays of a random but realistic corridor: greens 20-70 % of the cycle."""
    C = float(rng.uniform(60, 150))
    go = rng.uniform(0.2, 0.7, n) * C
    if symmetric is None:
        symmetric = bool(rng.random() < 0.5)
    gi = go.copy() if symmetric else rng.uniform(0.2, 0.7, n) * C
    d = np.zeros(n) if symmetric else rng.uniform(-0.3, 0.3, n) * C
    pos = np.concatenate([[0.0], np.cumsum(rng.uniform(150, 900, n - 1))])
    t_out = pos / (rng.uniform(30, 60) / 3.6)
    t_in = (pos[-1] - pos) / (rng.uniform(30, 60) / 3.6)
    if rng.random() < 0.4:
        wo, wi = 1.0, 1.0
    else:
        wo, wi = 1.0, float(rng.uniform(0.2, 1.0))
        if rng.random() < 0.5:
            wo, wi = wi, wo
    return C, go, gi, d, t_out, t_in, wo, wi


def random_spec(rng: np.random.Generator, n: int, with_flows: bool = True) -> CorridorSpec:
    inters = []
    x = 0.0
    for i in range(n):
        nph = int(rng.integers(2, 5))
        phases = []
        for k in range(nph):
            phases.append(PhaseSpec(
                name=f"P{k + 1}",
                min_green_s=float(rng.uniform(5, 15)),
                ped_clearance_s=float(rng.choice([0.0, rng.uniform(5, 20)])),
                yellow_s=float(rng.uniform(3, 4)),
                all_red_s=float(rng.uniform(1, 2)),
                coordinated=(k == 0),
                flow_vph=float(rng.uniform(50, 700)) if with_flows else None,
            ))
        inters.append(IntersectionSpec(id=f"I{i}", position_m=x, phases=phases))
        x += float(rng.uniform(150, 900))
    return CorridorSpec(id="R", intersections=inters, speed_out_kmh=float(rng.uniform(30, 60)),
                        speed_in_kmh=float(rng.uniform(30, 60)), cycle_min_s=60.0, cycle_max_s=150.0,
                        volume_out_vph=float(rng.uniform(200, 1200)), volume_in_vph=float(rng.uniform(200, 1200)))
