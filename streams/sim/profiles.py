"""Diurnal and weekly profiles (local hour of day -> relative level) used by the generators.

All functions accept scalars or numpy arrays (``weekend`` likewise).

Example:
    >>> rush, night = traffic_demand(8.0, weekend=False), traffic_demand(3.0, weekend=False)
    >>> bool(rush > 0.8 > 0.1 > night)
    True
    >>> bool(traffic_demand(8.0, weekend=True) < rush)
    True
"""
from __future__ import annotations

import numpy as np


def _bump(h, centre: float, width: float):
    d = (np.asarray(h) - centre + 12.0) % 24.0 - 12.0  # wrap around midnight
    return np.exp(-0.5 * (d / width) ** 2)


def _plateau(h, on: float, off: float, softness: float = 0.6):
    h = np.asarray(h)
    return 1.0 / (1.0 + np.exp(-(h - on) / softness)) / (1.0 + np.exp((h - off) / softness))


def traffic_demand(hour, weekend):
    """Demand as a share of capacity on a typical segment: AM (08:00) and PM (18:00) rush on weekdays."""
    we = 0.06 + 0.50 * _plateau(hour, 8.5, 22.0) + 0.18 * _bump(hour, 15.5, 2.5)
    wd = 0.06 + 0.52 * _plateau(hour, 6.5, 21.5) + 0.45 * _bump(hour, 8.0, 0.8) + 0.50 * _bump(hour, 18.0, 1.0)
    return np.where(weekend, we, wd)


def traffic_activity(hour, weekend):
    """Traffic demand normalised to ~1 at the weekday peak (drives NO2, CO and road noise)."""
    return traffic_demand(hour, weekend) / 1.1


def pm_diurnal(hour):
    """Fine particles: higher at night and morning (shallow mixing layer), lowest mid-afternoon."""
    return 1.0 + 0.28 * np.cos(2 * np.pi * (np.asarray(hour) - 4.0) / 24.0)


def ozone_diurnal(hour):
    """Ozone: photochemical, peaks ~14:30, near zero before dawn."""
    return 0.15 + np.maximum(0.0, np.sin(np.pi * (np.asarray(hour) - 7.0) / 15.0)) ** 1.5


def water_demand(hour):
    """Urban water demand share, peaks ~07:30 and ~19:30."""
    return 0.25 + 0.55 * _plateau(hour, 6.0, 23.0) + 0.35 * _bump(hour, 7.5, 1.2) + 0.30 * _bump(hour, 19.5, 1.5)


def power_demand(hour, weekend):
    """Electrical load share: evening peak, working-day plateau."""
    work = np.where(weekend, 0.0, 0.20 * _plateau(hour, 8.5, 18.0))
    return 0.50 + work + 0.25 * _plateau(hour, 7.0, 23.5) + 0.22 * _bump(hour, 20.0, 1.5)


def case_rate(hour):
    """Grid-case reporting intensity: mostly working hours, a trickle at night (12345 is 24/7)."""
    return 0.12 + 0.88 * _plateau(hour, 7.5, 20.5)


def incident_rate(hour):
    """Emergency incidents: busier in the day and evening."""
    return 0.35 + 0.65 * _plateau(hour, 7.0, 23.0)
