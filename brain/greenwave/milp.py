"""MAXBAND as a mixed-integer program, solved with ``scipy.optimize.milp`` — the reference.

This is the yardstick the numba kernel (:func:`brain.kernels.bandwidth.max_bandwidth`) is tested
and benchmarked against; the engine never calls it. scipy is imported inside the function so
``import brain`` stays within brain's allowed dependencies.

Formulation (Little, Kelson & Gartner 1981, written with the green starts as variables instead
of the interference variables ``w, w̄``; the two are a change of variables). Times in cycles.
Fix the outbound band's start at the first intersection to 0. Variables: outbound band ``b``,
inbound band ``b̄``, inbound band start ``σ`` at the last intersection, outbound green start
``u_i`` at each intersection, and integers ``m_i`` choosing which cycle's inbound green the
inbound band uses::

    max  b + k b̄
    s.t. T_i + b <= u_i + G_i,           u_i <= T_i                       (outbound band inside green)
         u_i + d_i + m_i <= σ + T̄_i,     σ + T̄_i + b̄ <= u_i + d_i + m_i + Ḡ_i   (inbound band inside green)
         (1 - k)(b̄ - k b) >= 0                                                (MAXBAND's demand target)
         0 <= σ < 1,  m_i integer

A zero weight makes the corridor one-way: the other direction's rows are dropped.

Example:
    >>> import numpy as np
    >>> g = np.array([40.0, 40.0, 40.0]); z = np.zeros(3)
    >>> r = maxband_milp(90.0, g, g, z, np.array([0.0, 45.0, 90.0]), np.array([90.0, 45.0, 0.0]), 1.0, 1.0)
    >>> round(float(r["b_out_s"] + r["b_in_s"]), 3)
    80.0
"""
from __future__ import annotations

import math

import numpy as np


def maxband_milp(cycle_s, green_out_s, green_in_s, in_shift_s, travel_out_s, travel_in_s,
                 weight_out: float = 1.0, weight_in: float = 1.0, time_limit_s: float | None = None) -> dict:
    """Solve the MAXBAND MILP; same inputs as :func:`brain.kernels.bandwidth.max_bandwidth`.

    Returns ``{"status", "objective", "b_out_s", "b_in_s", "green_start_s"}``; ``status`` is
    ``"optimal"``, ``"infeasible"`` or scipy's message. ``objective`` is
    ``weight_out * b_out_s + weight_in * b_in_s``.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp  # lazy: brain may not import scipy

    C = float(cycle_s)
    go = np.asarray(green_out_s, dtype=float) / C
    gi = np.asarray(green_in_s, dtype=float) / C
    d = np.asarray(in_shift_s, dtype=float) / C
    T = np.asarray(travel_out_s, dtype=float) / C
    Tb = np.asarray(travel_in_s, dtype=float) / C
    n = len(go)
    # variable layout: b, bb, sigma, u_0..u_{n-1}, m_0..m_{n-1}
    nv = 3 + 2 * n
    iu = 3
    im = 3 + n
    rows, lbs, ubs = [], [], []

    def row(coefs: dict, lb: float, ub: float) -> None:
        r = np.zeros(nv)
        for k, v in coefs.items():
            r[k] = v
        rows.append(r)
        lbs.append(lb)
        ubs.append(ub)

    one_way_out, one_way_in = weight_in <= 0, weight_out <= 0
    for i in range(n):
        if not one_way_in:
            row({0: 1.0, iu + i: -1.0}, -np.inf, go[i] - T[i])                   # b - u_i <= G_i - T_i
        if not one_way_out:
            row({iu + i: 1.0, im + i: 1.0, 2: -1.0}, -np.inf, Tb[i] - d[i])      # u_i + m_i - σ <= T̄_i - d_i
            row({2: 1.0, 1: 1.0, iu + i: -1.0, im + i: -1.0}, -np.inf, d[i] + gi[i] - Tb[i])
    kw = (weight_out - weight_in)
    if abs(kw) > 0 and not (one_way_out or one_way_in):
        # (w_out - w_in)(w_out b̄ - w_in b) >= 0, the weighted form of (1 - k)(b̄ - k b) >= 0
        row({1: kw * weight_out, 0: -kw * weight_in}, 0.0, np.inf)
    lb = np.full(nv, -np.inf)
    ub = np.full(nv, np.inf)
    lb[0], ub[0] = 0.0, 0.0 if one_way_in else go.min()
    lb[1], ub[1] = 0.0, 0.0 if one_way_out else gi.min()
    lb[2], ub[2] = 0.0, 1.0
    lb[iu:iu + n] = T - 1.0
    ub[iu:iu + n] = T
    # m_i keeps u_i + d_i + m_i within a cycle of σ + T̄_i; these bounds never cut a solution.
    lb[im:] = np.floor(Tb - d - T - 2.0)
    ub[im:] = np.ceil(Tb - d - T + 3.0)
    c = np.zeros(nv)
    c[0], c[1] = -weight_out, -weight_in
    integrality = np.zeros(nv)
    integrality[im:] = 1
    options = {} if time_limit_s is None else {"time_limit": time_limit_s}
    res = milp(c, integrality=integrality, bounds=Bounds(lb, ub),
               constraints=LinearConstraint(np.array(rows), lbs, ubs), options=options)
    if res.status == 2:
        return {"status": "infeasible", "objective": math.nan, "b_out_s": 0.0, "b_in_s": 0.0, "green_start_s": None}
    if res.x is None:
        return {"status": res.message, "objective": math.nan, "b_out_s": math.nan, "b_in_s": math.nan, "green_start_s": None}
    x = res.x
    return {
        "status": "optimal" if res.status == 0 else res.message,
        "objective": (weight_out * x[0] + weight_in * x[1]) * C,
        "b_out_s": x[0] * C,
        "b_in_s": x[1] * C,
        "green_start_s": np.mod(x[iu:iu + n], 1.0) * C,
    }
