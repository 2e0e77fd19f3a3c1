"""Labelled series for :mod:`bench.anomaly_real`: the SKAB water-pump corpus and a synthetic corpus
with known truth, each series a :class:`Case` (times, one or more channels, anomaly windows).

SKAB (``/work/shared/datasets/skab``, GPL-3: read here at benchmark time, never copied into the
package) is real sensor data, one row a second: each file is one experiment with its own fresh
detectors; its labelled anomalous periods are the windows; ``anomaly-free.csv`` has none.

The synthetic corpus has one family per kind of real series that breaks naive detectors; every
family draws its parameters from the seed, so each run sees new series of the same kinds:

======================  ===========================================================================
``seasonal``            daily x weekly profile + AR(1) noise, 5 min
``counts``              Poisson counts with a daily rate between ~0.3 and ~8 (many zeros), 5 min
``bursty``              log-normal traffic with normal heavy-tailed (Pareto) bursts, 1 min
``heavy_tail``          level + Student-t (3 d.o.f.) noise, 1 min
``steps``               noise-free step-periodic daily schedule (edges at odd minutes), 1 min
``level_shift``         AR(1) around a level that also moves for good once (a normal regime change)
``drift``               AR(1), a slow linear drift is the anomaly
``trend``               a linear trend + noise
``irregular``           seasonal, sampled at exponential intervals with hour-long gaps
``flat``                a set-point held for days (quantised, mostly repeats) that changes rarely
``odd_period``          a cycle of 15 min to 30 h (not an hour, day or week) with a step edge and a
                        wave in it, sampled at irregular intervals (2 s to minutes)
``count_bursts``        tweet-like volumes: negative-binomial counts (overdispersed) around a
                        daily rate, with rare normal bursts, 5 min
``low_counts``          incidents per window: Poisson or negative-binomial counts (mean 0.2 to 5,
                        mostly 0/1/2/3, a mild daily rhythm), 5 min; the anomalies are bursts of
                        the *rate* (x4 for 20 to 120 points), drawn as counts, not scaled values
``odd_steps``           a noise-free step schedule at an odd period (7 h, 90 min or 37 sampling
                        intervals) with a dip before its falling edge, sampled every 20 s or 1 min,
                        regularly or irregularly: its sharp edges are normal at their phase
======================  ===========================================================================

Anomalies (one to three per series, after the first 30 % of it): spike, dip, burst (a sustained
rise), level shift, variance jump, drift, outage; the window is the anomaly's extent with at least
``MIN_WINDOW`` points (a one-point spike is credited only if caught within that many points).
"""
from __future__ import annotations

import datetime as dt
import glob
import os
from dataclasses import dataclass, field

import numpy as np

SKAB_DIR = "/work/shared/datasets/skab/data"
START_MS = 1_767_571_200_000  # 2026-01-05 00:00 UTC, a Monday
MIN_WINDOW = 30
DAY_S = 86_400.0
KINDS = ("seasonal", "counts", "bursty", "heavy_tail", "steps", "level_shift", "drift", "trend", "irregular", "flat",
         "odd_period", "count_bursts", "odd_steps", "low_counts")  # new kinds go last: earlier kinds keep their seeds


@dataclass
class Case:
    """One labelled series: ``channels`` share ``ts_ms``; ``windows`` are ``[start, end)`` indexes."""

    kind: str
    name: str
    ts_ms: np.ndarray
    channels: list
    windows: list = field(default_factory=list)

    def normal_mask(self) -> np.ndarray:
        m = np.ones(self.ts_ms.size, dtype=bool)
        for a, b in self.windows:
            m[a:b] = False
        return m


# --- SKAB -----------------------------------------------------------------------------------------
def _runs(flag: np.ndarray) -> list[tuple[int, int]]:
    d = np.diff(np.concatenate([[0], flag.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def skab_cases(root: str = SKAB_DIR) -> list[Case]:
    """Every SKAB file as a Case (8 channels); empty when the corpus is not on this machine."""
    out = []
    for path in sorted(glob.glob(os.path.join(root, "*", "*.csv"))):
        with open(path) as f:
            header = f.readline().strip().split(";")
            rows = [line.strip().split(";") for line in f if line.strip()]
        if not rows:
            continue
        cols = {name: i for i, name in enumerate(header)}
        chans = [c for c in header if c not in ("datetime", "anomaly", "changepoint")]
        ts = np.array([int(dt.datetime.fromisoformat(r[0]).replace(tzinfo=dt.timezone.utc).timestamp() * 1000) for r in rows],
                      dtype=np.int64)
        data = [np.array([float(r[cols[c]]) for r in rows]) for c in chans]
        label = np.array([float(r[cols["anomaly"]]) for r in rows]) > 0 if "anomaly" in cols else np.zeros(len(rows), bool)
        name = os.path.relpath(path, root)
        out.append(Case("skab", name, ts, data, _runs(label)))
    return out


# --- synthetic --------------------------------------------------------------------------------------
def _ar1(rng, n, phi, sd):
    e = rng.normal(0.0, sd * np.sqrt(1 - phi * phi), n)
    out = np.empty(n)
    acc = 0.0
    for i in range(n):
        acc = phi * acc + e[i]
        out[i] = acc
    return out


def _daily(ts_ms, rng, amp):
    h = (ts_ms / 3_600_000.0) % 24.0
    dow = (ts_ms // 86_400_000) % 7  # 0 = Monday (START_MS is a Monday)
    shape = np.sin(2 * np.pi * (h - 9.0) / 24.0) + 0.4 * np.sin(4 * np.pi * (h - rng.uniform(0, 12)) / 24.0)
    return amp * shape * np.where(dow >= 5, 0.6, 1.0)


def _inject(rng, kind, v, ts_ms, scale, options):
    """Inject one to three anomalies into ``v`` in place; return their windows."""
    n = v.size
    windows = []
    n_anom = int(rng.integers(1, 4))
    starts = np.sort(rng.choice(np.arange(int(0.3 * n), n - 400), size=n_anom, replace=False))
    last_end = -1
    for a in starts.tolist():
        if a < last_end + 200:
            continue
        what = options[int(rng.integers(len(options)))]
        if what == "spike":
            v[a] += rng.choice([-1, 1]) * rng.uniform(6, 12) * scale if kind != "counts" else rng.uniform(15, 30)
            d = 1
        elif what == "dip":
            v[a] -= rng.uniform(6, 12) * scale
            d = 1
        elif what == "burst":
            d = int(rng.integers(20, 120))
            v[a:a + d] = v[a:a + d] * rng.uniform(2.5, 4.0) + (rng.uniform(4, 8) * scale if kind != "bursty" else 0.0)
        elif what == "shift":
            d = n - a
            v[a:] += rng.choice([-1, 1]) * rng.uniform(4, 8) * scale
        elif what == "variance":
            d = int(rng.integers(60, 240))
            v[a:a + d] += rng.normal(0, rng.uniform(4, 6) * scale, d)
        elif what == "drift":
            d = min(int(rng.integers(300, 900)), n - a)
            ramp = np.linspace(0.0, rng.uniform(6, 10) * scale, d)
            v[a:a + d] += ramp
            v[a + d:] += ramp[-1]
        elif what == "outage":
            d = int(rng.integers(30, 180))
            v[a:a + d] = 0.0
        else:
            raise ValueError(what)
        w = min(max(d, MIN_WINDOW), n - a)
        windows.append((a, a + w))
        last_end = a + w
    return windows


def _low_counts(rng, kind, seed, ts) -> Case:
    """Low-rate counts whose anomaly is the rate itself rising x4: the burst is drawn from the same
    count law at four times the mean, so it is as quantised and noisy as the normal points."""
    n = ts.size
    mean = 10 ** rng.uniform(np.log10(0.2), np.log10(5.0)) * np.exp(0.4 * np.sin(2 * np.pi * ((ts / 3_600_000.0) % 24 - 9) / 24))
    r = rng.uniform(1.0, 5.0) if rng.random() < 0.5 else np.inf  # inf: Poisson; else variance = mean + mean^2 / r

    def draw(m):
        return rng.poisson(m) if np.isinf(r) else rng.negative_binomial(r, r / (r + m))

    v = draw(mean).astype(float)
    windows = []
    last_end = -1
    for a in np.sort(rng.choice(np.arange(int(0.3 * n), n - 400), size=int(rng.integers(1, 4)), replace=False)).tolist():
        if a < last_end + 200:
            continue
        d = int(rng.integers(20, 120))
        v[a:a + d] = draw(4.0 * mean[a:a + d])
        windows.append((a, a + max(d, MIN_WINDOW)))
        last_end = a + max(d, MIN_WINDOW)
    return Case(kind, f"{kind}-{seed}", ts, [v], windows)


def synthetic_case(kind: str, seed: int, n: int = 8000) -> Case:
    """One synthetic series of ``kind`` (see the module docstring), about ``n`` points."""
    rng = np.random.default_rng(seed)
    step_s = 300.0 if kind in ("seasonal", "counts", "level_shift", "drift", "trend", "low_counts") else 60.0
    ts = START_MS + (np.arange(n) * step_s * 1000).astype(np.int64)
    level = 10 ** rng.uniform(0, 3)
    sd = level * rng.uniform(0.01, 0.1)
    if kind == "seasonal":
        v = level + _daily(ts, rng, 8 * sd) + _ar1(rng, n, 0.5, sd)
        opts = ("spike", "dip", "burst", "variance", "shift")
    elif kind == "counts":
        base = rng.uniform(0.3, 3.0)
        lam = base * np.exp(1.0 * np.sin(2 * np.pi * ((ts / 3_600_000.0) % 24 - 9) / 24))
        v = rng.poisson(lam).astype(float)
        windows = _inject(rng, kind, v, ts, 1.0, ("spike", "burst"))
        # a burst of counts is an integer rise: keep counts whole
        return Case(kind, f"{kind}-{seed}", ts, [np.round(v)], windows)
    elif kind == "bursty":
        base = level * np.exp(_ar1(rng, n, 0.8, 0.3))
        bursts = np.where(rng.random(n) < 0.01, rng.pareto(2.0, n) * 3.0 * level, 0.0)
        v = base + bursts + _daily(ts, rng, 0.3 * level)
        v = np.maximum(v, 0.0)
        opts = ("burst", "outage")
        sd = level
    elif kind == "heavy_tail":
        v = level + sd * rng.standard_t(3, n)
        opts = ("spike", "shift", "variance")
        sd = sd * 3
    elif kind == "steps":
        h = ((ts - START_MS) / 60_000.0) % 1440.0
        on, off = rng.integers(6 * 60, 9 * 60) + 0.5, rng.integers(17 * 60, 20 * 60) + 0.5
        lunch = (h > 12 * 60 + 7) & (h < 13 * 60 + 3)
        v = np.where((h > on) & (h < off), level * 4.0, level) - lunch * level * 1.5
        opts = ("spike", "outage", "shift")
        sd = level
    elif kind == "level_shift":
        v = level + _ar1(rng, n, 0.7, sd)
        k = int(rng.integers(int(0.35 * n), int(0.5 * n)))
        v[k:] += rng.choice([-1, 1]) * 3 * sd  # a normal regime change, not labelled: adopt it
        opts = ("spike", "shift", "variance")
    elif kind == "drift":
        v = level + _ar1(rng, n, 0.7, sd)
        opts = ("drift",)
    elif kind == "trend":
        v = level + np.linspace(0, rng.uniform(-1, 1) * 20 * sd, n) + _ar1(rng, n, 0.3, sd)
        opts = ("spike", "dip", "variance")
    elif kind == "irregular":
        gaps = rng.exponential(120.0, n) + 5.0
        gaps[rng.random(n) < 0.003] = 3600.0 * rng.uniform(1, 6)
        ts = START_MS + (np.cumsum(gaps) * 1000).astype(np.int64)
        v = level + _daily(ts, rng, 5 * sd) + rng.normal(0, sd, n)
        opts = ("spike", "dip", "burst", "shift")
    elif kind == "odd_period":
        # a cycle that is not an hour, a day or a week (a machine's duty cycle, a shift rota), with a
        # step edge and a ramp inside each cycle, sampled irregularly
        gaps = rng.exponential(rng.uniform(20.0, 120.0), n) + 2.0
        ts = START_MS + (np.cumsum(gaps) * 1000).astype(np.int64)
        period_s = rng.uniform(0.25, 30.0) * 3600.0
        ph = ((ts - START_MS) / 1000.0 / period_s + rng.uniform()) % 1.0
        duty = rng.uniform(0.2, 0.6)
        v = level + 6 * sd * np.where(ph < duty, 1.0, 0.0) + 3 * sd * np.sin(2 * np.pi * ph) + rng.normal(0, sd, n)
        opts = ("spike", "dip", "shift", "burst")
    elif kind == "odd_steps":
        dt_s = float(rng.choice([20.0, 60.0]))
        gaps = np.full(n, dt_s) if rng.random() < 0.5 else rng.exponential(0.5 * dt_s, n) + 0.5 * dt_s
        ts = START_MS + (np.cumsum(gaps) * 1000).astype(np.int64)
        period_s = float(rng.choice([7 * 3600.0, 5400.0, 37 * dt_s]))
        ph = ((ts - START_MS) / 1000.0 / period_s + rng.uniform()) % 1.0
        on = rng.uniform(0.1, 0.3)
        off = on + rng.uniform(0.3, 0.5)
        v = np.where((ph > on) & (ph < off), level * 4.0, level) - ((ph > off - 0.1) & (ph < off - 0.05)) * level * 1.5
        opts = ("spike", "outage", "shift")
        sd = level
    elif kind == "count_bursts":
        # tweet-like volumes: negative-binomial counts around a daily rate, with normal bursts
        mean = rng.uniform(2.0, 60.0) * np.exp(0.8 * np.sin(2 * np.pi * ((ts / 3_600_000.0) % 24 - 9) / 24))
        r = rng.uniform(1.0, 5.0)  # overdispersion: variance = mean + mean^2 / r
        mean = mean * np.where(rng.random(n) < 0.005, rng.uniform(2, 5), 1.0)
        v = rng.negative_binomial(r, r / (r + mean)).astype(float)
        windows = _inject(rng, kind, v, ts, float(np.sqrt(np.mean(mean) + np.mean(mean) ** 2 / r)), ("spike", "burst", "outage"))
        return Case(kind, f"{kind}-{seed}", ts, [np.round(v)], windows)
    elif kind == "low_counts":
        return _low_counts(rng, kind, seed, ts)
    elif kind == "flat":
        q = 10 ** np.round(np.log10(level) - 2)
        setpoints = np.round(level * (1 + 0.2 * rng.standard_normal(n // 2000 + 1)) / q) * q
        v = setpoints[np.arange(n) // 2000].astype(float)
        jitter = rng.random(n) < 0.02  # a rare one-quantum wobble
        v[jitter] += q
        opts = ("spike", "variance")
        sd = max(q * 3, 0.01 * level)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    windows = _inject(rng, kind, v, ts, sd, opts)
    return Case(kind, f"{kind}-{seed}", ts, [v], windows)


def synthetic_cases(base_seed: int, per_kind: int, n: int = 8000, kinds=None) -> list[Case]:
    """``per_kind`` series of every kind (or only of ``kinds``), seeds drawn from ``base_seed``: a
    series' seed does not depend on which kinds are selected."""
    rng = np.random.default_rng(base_seed)
    seeds = [(kind, int(rng.integers(2**31))) for kind in KINDS for _ in range(per_kind)]
    return [synthetic_case(kind, s, n) for kind, s in seeds if kinds is None or kind in kinds]
