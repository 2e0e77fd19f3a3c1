"""Absolute safety limits every plan and every transition cycle must respect, whatever the spec says.

A corridor spec may ask for less (a 2 s yellow, a 0.5 s all-red, a 200 s cycle): the limits are
the floor under every spec, with the standard defaults: yellow >= 3 s, all-red >= 1 s, any green
>= 5 s, a green serving pedestrians long enough for their walk and clearance (the phase's
``ped_clearance_s``, and at least ``ped_walk_min_s`` more when pedestrians cross in it), a cycle
within [30, 180] s. A site may raise them (longer yellows for fast approaches, a longer maximum
cycle for a wide junction) — the bounds on each field say how far — but never drop below the
defaults' floors. A fixed cycle must also lie within the corridor's own bounds.

Example:
    >>> lim = SafetyLimits()
    >>> lim.yellow_min_s, lim.all_red_min_s, lim.cycle_min_s, lim.cycle_max_s
    (3.0, 1.0, 30.0, 180.0)
    >>> phase_limit_violations("A/EW", green_s=25.0, yellow_s=2.5, all_red_s=1.0, ped_clearance_s=0.0, limits=lim)
    ['A/EW: yellow 2.50 s below the 3.0 s minimum']
    >>> SafetyLimits.from_dict({"yellow_min_s": 2})
    Traceback (most recent call last):
    ...
    ValueError: invalid safety limits: Expected `float` >= 3.0 - at `$.yellow_min_s`
"""
from __future__ import annotations

import math
from typing import Annotated

import msgspec
from msgspec import Meta

TOL_S = 1e-6


class SafetyLimits(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Floors under every plan (s). Each field's bounds are its allowed settings.

    Example: see the module docstring.
    """

    yellow_min_s: Annotated[float, Meta(ge=3.0, le=8.0)] = 3.0
    all_red_min_s: Annotated[float, Meta(ge=1.0, le=6.0)] = 1.0
    green_min_s: Annotated[float, Meta(ge=5.0, le=30.0)] = 5.0
    ped_walk_min_s: Annotated[float, Meta(ge=4.0, le=15.0)] = 4.0
    cycle_min_s: Annotated[float, Meta(ge=30.0, le=120.0)] = 30.0
    cycle_max_s: Annotated[float, Meta(ge=60.0, le=300.0)] = 180.0

    def __post_init__(self) -> None:
        if self.cycle_min_s > self.cycle_max_s:
            raise ValueError(f"invalid safety limits: cycle_min_s {self.cycle_min_s} > cycle_max_s {self.cycle_max_s}")

    @classmethod
    def from_dict(cls, data: dict) -> "SafetyLimits":
        try:
            return msgspec.convert(data, type=cls)
        except msgspec.ValidationError as exc:
            raise ValueError(f"invalid safety limits: {exc}") from None


DEFAULT_LIMITS = SafetyLimits()


def phase_limit_violations(where: str, *, green_s: float, yellow_s: float, all_red_s: float, ped_clearance_s: float,
                           limits: SafetyLimits = DEFAULT_LIMITS) -> list[str]:
    """What one phase of one cycle breaks of the absolute limits (empty: nothing)."""
    if not all(math.isfinite(x) for x in (green_s, yellow_s, all_red_s)):
        return [f"{where}: non-finite timing"]
    out = []
    if yellow_s < limits.yellow_min_s - TOL_S:
        out.append(f"{where}: yellow {yellow_s:.2f} s below the {limits.yellow_min_s} s minimum")
    if all_red_s < limits.all_red_min_s - TOL_S:
        out.append(f"{where}: all-red {all_red_s:.2f} s below the {limits.all_red_min_s} s minimum")
    if green_s < limits.green_min_s - TOL_S:
        out.append(f"{where}: green {green_s:.2f} s below the absolute {limits.green_min_s} s minimum")
    if ped_clearance_s > 0 and green_s < max(ped_clearance_s, limits.ped_walk_min_s) - TOL_S:
        out.append(f"{where}: green {green_s:.2f} s too short for pedestrians "
                   f"(walk + clearance {max(ped_clearance_s, limits.ped_walk_min_s):.1f} s)")
    return out


def cycle_limit_violations(cycle_s: float, *, fixed_s: float | None, bounds_s: tuple[float, float],
                           limits: SafetyLimits = DEFAULT_LIMITS) -> list[str]:
    """The cycle against the absolute range and, when the corridor fixes it, the corridor's bounds."""
    if not (math.isfinite(cycle_s) and cycle_s > 0):
        return [f"cycle {cycle_s} is not a positive number"]
    out = []
    if not (limits.cycle_min_s - TOL_S <= cycle_s <= limits.cycle_max_s + TOL_S):
        out.append(f"cycle {cycle_s:.1f} s outside the absolute range [{limits.cycle_min_s}, {limits.cycle_max_s}] s")
    if fixed_s is not None and not (bounds_s[0] - TOL_S <= fixed_s <= bounds_s[1] + TOL_S):
        out.append(f"fixed cycle {fixed_s} s outside the corridor's bounds [{bounds_s[0]}, {bounds_s[1]}] s")
    return out
