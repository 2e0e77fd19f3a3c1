"""Sensor faults judged from the first hours: stuck, spikes and drift per tick, against peers.

The long-memory fault statistics of :mod:`brain.kernels.faults` learn each sensor's own history
and need hours before they can say anything; a sensor that sticks at 00:43 on the engine's first
night is missed. These kernels judge one tick of window means for all the sensors of a family at
once and pool what they learn over **peers** (sensors of the same type), so the first hour of a
city of a few hundred sensors is already thousands of observations:

* **stuck**: every field a sensor reported equals, bit for bit, what it reported in its previous
  window. How surprising that is depends on the sensor's *resolution*: a flow meter with three
  decimals almost never repeats, a rain gauge at 0 mm always does. The evidence is the repeat rate
  of each field, pooled over the sensor's type (Krichevsky-Trofimov estimate), so a run of repeats
  has log-probability ``sum(log rate)`` over its repeated fields; zeros (a floor, not a reading)
  are not evidence either way. Flagged below ``STUCK_LOG_P``.
* **spikes**: the primary value's log jumps away from the median of the key's last
  ``SPIKE_RING`` values by more than ``SPIKE_K`` times the type's usual distance (at least
  ``SPIKE_MIN_LOG``), coming from inside that band: an *excursion*. At least ``SPIKE_MIN_EVENTS``
  separate excursions within the key's last ``SPIKE_WINDOW`` reported ticks are spikes; a step (an
  accident, a burst) is one excursion that lasts, not three.
* **drift**: the primary value against its peers (log ratio to the median of the peers that
  reported this tick, or to an outside reference), averaged in blocks of ``block_ticks`` ticks,
  walks away: over the last ``DRIFT_BLOCKS`` blocks the mean of the last ``DRIFT_ENDS`` blocks
  minus that of the first ones is at least ``DRIFT_MIN_LOG`` and ``DRIFT_K`` times the type's mean
  block-to-block change, and no block step larger than ``DRIFT_STEP_K`` usual changes carries
  more than ``DRIFT_STEP_SHARE`` of it (a step is an event or a recalibration, not a drift). City
  events move a sensor *and its peers* (a pollution episode over a district) or move it in one
  step (an accident, a burst); a drifting sensor walks away from its peers.

Dropout (a sensor that stops sending) is :func:`silence_tick`: silent for ``SILENT_K`` times its
own usual gap between reports, and at least ``SILENT_MIN_MS``.

Layout: per-key state ``K[n, K_COLS]`` plus ``prev[n, F]`` (last values) and ``ring[n,
DRIFT_BLOCKS]`` (block means), per-type state ``G[n_types, G_COLS]`` plus ``rep[n_types, F, 2]``
(repeats, observations). ``_ref`` functions are the plain-Python twins the tests compare with.

Example: 24 noise monitors, the first stuck from its third window on. Its first repeat (window 4)
is already unlikely, the third one is beyond ``STUCK_LOG_P`` for this resolution:

    >>> import numpy as np
    >>> n = 24
    >>> st = fault_state(n, 2, 1)
    >>> peer_ptr, peer_idx = peers_csr([[j for j in range(n) if j != k] for k in range(n)])
    >>> rng = np.random.default_rng(0)
    >>> flags = []
    >>> for t in range(6):
    ...     vals = 60.0 + rng.normal(0.0, 2.0, (n, 2))      # LAeq, LAmax window means
    ...     if t >= 2:
    ...         vals[0] = [61.25, 70.5]
    ...     out = fault_tick(vals, np.full(n, np.nan), np.zeros(n, np.int64), np.zeros(n, np.int64),
    ...                      peer_ptr, peer_idx, 3, STUCK_LOG_P, *st)
    ...     flags.append(int(out[0][0]))
    >>> flags
    [0, 0, 0, 0, 0, 1]

    When it reads something new again, the run is over:

    >>> out = fault_tick(60.0 + rng.normal(0.0, 2.0, (n, 2)), np.full(n, np.nan), np.zeros(n, np.int64),
    ...                  np.zeros(n, np.int64), peer_ptr, peer_idx, 3, STUCK_LOG_P, *st)
    >>> int(out[0][0]), float(out[1][0])
    (0, 0.0)
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

FLAG_STUCK = 1
FLAG_SPIKES = 2
FLAG_DRIFT = 4
FAULT_NAMES = {FLAG_STUCK: "stuck", FLAG_SPIKES: "spikes", FLAG_DRIFT: "drift"}

STUCK_LOG_P = -18.0  # e^-18 ~ 1.5e-8 per test: a few hundred sensors x 288 windows a day stay quiet
SPIKE_K = 3.0
SPIKE_MIN_LOG = 0.35  # x1.4 at least
SPIKE_WINDOW = 24
SPIKE_MIN_EVENTS = 3
SPIKE_RING = 12
SPIKE_MIN_BASE = 4  # values in the ring before excursions are judged
SPIKE_PRIOR = 0.05  # usual |distance to the running median| of a log series before any is seen
DRIFT_BLOCKS = 16  # 4 h of 15-minute blocks: a slow drift needs a long enough window to show
DRIFT_MIN_BLOCKS = 6  # 1.5 h: a drift is slow, and the first hour of a cold start is too short a baseline
DRIFT_MIN_LOG = 0.22  # ~25 % away from the peers
DRIFT_MIN_PEERS = 2  # with one peer, which of the two drifts cannot be told
DRIFT_K = 5.0
DRIFT_STEP_SHARE = 0.5
DRIFT_STEP_K = 3.0  # a block step within 3 usual changes is noise, not a step, whatever its share
DRIFT_ENDS = 3  # the change is the mean of the last 3 blocks minus the mean of the first 3 (less noisy than 2 blocks)
DRIFT_PRIOR = 0.03
FLOOR_FRAC = 0.05  # values below 5 % of the type's mean level are read as that floor (log of ~0)
POOL_MEMORY = 2000.0  # effective sample size of pooled scales: they keep adapting

# per-key state columns
K_RUN = 0  # log-probability of the current repeat run (0: none)
K_Y1 = 1  # last primary log value (NaN: none)
K_OUT = 2  # 1 while the last value was outside the band around the running median
K_MASK = 3  # excursions begun in the last SPIKE_WINDOW reported ticks, as bits (float-held integer)
K_BSUM = 4
K_BN = 5
K_BT = 6  # ticks into the current block
K_DRIFT = 7  # drift flag as of the last block
K_DTOT = 8  # drift change (log ratio) as of the last block
K_YRING = 9  # the last SPIKE_RING primary log values (oldest first, NaN: none)
K_COLS = K_YRING + SPIKE_RING
# per-type state columns
G_LEVEL = 0  # mean primary level
G_LEVEL_N = 1
G_JAG = 2  # mean |distance to the running median|
G_JAG_N = 3
G_STEP = 4  # mean |block-to-block change| of the peer residual
G_STEP_N = 5
G_COLS = 6


def fault_state(n_keys: int, n_fields: int, n_types: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fresh state: (K, prev, ring, G, rep)."""
    K = np.zeros((n_keys, K_COLS))
    K[:, K_Y1] = np.nan
    K[:, K_YRING:] = np.nan
    prev = np.full((n_keys, n_fields), np.nan)
    ring = np.full((n_keys, DRIFT_BLOCKS), np.nan)
    G = np.zeros((n_types, G_COLS))
    rep = np.zeros((n_types, n_fields, 2))
    return K, prev, ring, G, rep


def peers_csr(peers: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Peer lists as (ptr, idx) arrays: key k's peers are ``idx[ptr[k]:ptr[k + 1]]``."""
    ptr = np.zeros(len(peers) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(p) for p in peers])
    idx = np.array([i for p in peers for i in p], dtype=np.int64)
    return ptr, idx


@njit(cache=True)
def _pool(G, t, col, x):
    n = min(G[t, col + 1], POOL_MEMORY)
    G[t, col] = (G[t, col] * n + x) / (n + 1.0)
    G[t, col + 1] = n + 1.0


@njit(cache=True)
def _median(buf, m):
    s = np.sort(buf[:m])
    return s[m // 2] if m % 2 else 0.5 * (s[m // 2 - 1] + s[m // 2])


@njit(cache=True)
def _popcount(x):
    c = 0
    while x:
        c += x & 1
        x >>= 1
    return c


@njit(cache=True)
def fault_tick(vals, ref, ktype, prim, peer_ptr, peer_idx, block_ticks, stuck_log_p, K, prev, ring, G, rep):  # pragma: no cover - compiled
    """One tick of window means ``vals[n, F]`` (NaN: not reported). ``ref[k]``: an outside reference
    for key k's primary value (a traffic detector's segment probe speed), used instead of the peers'
    median when the key has no peers (NaN: none this tick). ``stuck_log_p``: the stuck threshold
    (``STUCK_LOG_P`` for 5-minute ticks; an hourly table makes 12 times fewer tests a day, so it may
    take ``STUCK_LOG_P + log(12)``). Returns (flags, stuck log-p, spike
    events, drift change); the state arrays are updated in place."""
    n, F = vals.shape
    flags = np.zeros(n, dtype=np.int64)
    logp = np.zeros(n)
    events = np.zeros(n, dtype=np.int64)
    dtot = np.zeros(n)
    reps = np.zeros((rep.shape[0], F, 2))
    y = np.full(n, np.nan)
    # 1. stuck, and the primary log value
    for k in range(n):
        t = ktype[k]
        present = 0
        repeated = 0
        lp = 0.0
        for f in range(F):
            v = vals[k, f]
            if v != v:
                continue
            present += 1
            p = prev[k, f]
            if p == p and v != 0.0:
                same = 1 if v == p else 0
                rate = (rep[t, f, 0] + 0.5) / (rep[t, f, 1] + 1.0)
                if same:
                    repeated += 1
                    lp += math.log(rate)
                reps[t, f, 0] += same
                reps[t, f, 1] += 1.0
            elif p == p and v == 0.0 and p == 0.0:
                repeated += 1  # a floor: keeps a run going, adds no evidence
            prev[k, f] = v
        if present > 0:
            if repeated == present and lp < 0.0:
                K[k, K_RUN] += lp
            elif repeated < present:
                K[k, K_RUN] = 0.0
        logp[k] = K[k, K_RUN]
        if K[k, K_RUN] < stuck_log_p:
            flags[k] |= FLAG_STUCK
        x = vals[k, prim[k]]
        if x == x:
            lvl = G[t, G_LEVEL]
            floor = FLOOR_FRAC * lvl if lvl > 0.0 else 1e-9
            y[k] = math.log(max(x, floor, 1e-9))
    # 2. spikes
    base_buf = np.empty(SPIKE_RING)
    for k in range(n):
        t = ktype[k]
        if y[k] != y[k]:
            events[k] = _popcount(int(K[k, K_MASK]))
            continue
        mask = (int(K[k, K_MASK]) << 1) & ((1 << SPIKE_WINDOW) - 1)
        m = 0
        for j in range(SPIKE_RING):
            v = K[k, K_YRING + j]
            if v == v:
                base_buf[m] = v
                m += 1
        out = 0.0
        if m >= SPIKE_MIN_BASE:
            dev = abs(y[k] - _median(base_buf, m))
            scale = G[t, G_JAG] if G[t, G_JAG_N] >= 20.0 else SPIKE_PRIOR
            thr = max(SPIKE_MIN_LOG, SPIKE_K * scale)
            if dev > thr:
                out = 1.0
                y1 = K[k, K_Y1]
                if K[k, K_OUT] == 0.0 and y1 == y1 and abs(y[k] - y1) > 0.5 * thr:
                    mask |= 1
            _pool(G, t, G_JAG, min(dev, thr))
        K[k, K_OUT] = out
        for j in range(SPIKE_RING - 1):
            K[k, K_YRING + j] = K[k, K_YRING + j + 1]
        K[k, K_YRING + SPIKE_RING - 1] = y[k]
        K[k, K_MASK] = mask
        K[k, K_Y1] = y[k]
        events[k] = _popcount(mask)
        if events[k] >= SPIKE_MIN_EVENTS:
            flags[k] |= FLAG_SPIKES
    # 3. drift against the peers' median (peers read this tick's values, before any update)
    buf = np.empty(max(peer_idx.shape[0], 1))
    for k in range(n):
        t = ktype[k]
        if y[k] == y[k] and peer_ptr[k + 1] == peer_ptr[k]:
            r = ref[k]
            if r == r and r > 0.0:
                K[k, K_BSUM] += y[k] - math.log(r)
                K[k, K_BN] += 1.0
        elif y[k] == y[k]:
            m = 0
            for j in range(peer_ptr[k], peer_ptr[k + 1]):
                q = y[peer_idx[j]]
                if q == q:
                    buf[m] = q
                    m += 1
            if m >= DRIFT_MIN_PEERS:
                K[k, K_BSUM] += y[k] - _median(buf, m)
                K[k, K_BN] += 1.0
        K[k, K_BT] += 1.0
        if K[k, K_BT] >= block_ticks:
            for b in range(DRIFT_BLOCKS - 1):
                ring[k, b] = ring[k, b + 1]
            ring[k, DRIFT_BLOCKS - 1] = K[k, K_BSUM] / K[k, K_BN] if K[k, K_BN] > 0 else np.nan
            K[k, K_BSUM] = 0.0
            K[k, K_BN] = 0.0
            K[k, K_BT] = 0.0
            scale = G[t, G_STEP] if G[t, G_STEP_N] >= 20.0 else DRIFT_PRIOR
            vbuf = np.empty(DRIFT_BLOCKS)
            nvalid = 0
            max_step = 0.0
            new_step = np.nan
            for b in range(DRIFT_BLOCKS):
                v = ring[k, b]
                if v != v:
                    continue
                if nvalid > 0:
                    new_step = v - vbuf[nvalid - 1]
                    max_step = max(max_step, abs(new_step))
                vbuf[nvalid] = v
                nvalid += 1
            total = 0.0
            drift = 0
            if nvalid >= DRIFT_MIN_BLOCKS:
                h = DRIFT_ENDS
                total = (vbuf[nvalid - h:nvalid].sum() - vbuf[:h].sum()) / h
                if (abs(total) >= max(DRIFT_MIN_LOG, DRIFT_K * scale)
                        and max_step <= max(DRIFT_STEP_SHARE * abs(total), DRIFT_STEP_K * scale)):
                    drift = 1
            before = vbuf[nvalid - 2] if nvalid >= 2 else np.nan
            K[k, K_DRIFT] = drift
            K[k, K_DTOT] = total
            newest = ring[k, DRIFT_BLOCKS - 1]
            if new_step == new_step and before == before and newest == newest:
                _pool(G, t, G_STEP, min(abs(new_step), 3.0 * scale))
        dtot[k] = K[k, K_DTOT]
        if K[k, K_DRIFT] > 0:
            flags[k] |= FLAG_DRIFT
    # 4. learn what the type looks like (after judging, so a tick never judges itself)
    for k in range(n):
        x = vals[k, prim[k]]
        if x == x and x > 0.0:
            _pool(G, ktype[k], G_LEVEL, x)
    rep += reps
    return flags, logp, events, dtot


# --- the plain-Python twin ----------------------------------------------------------------------

def _pool_ref(G, t: int, col: int, x: float) -> None:
    n = min(float(G[t][col + 1]), POOL_MEMORY)
    G[t][col] = (G[t][col] * n + x) / (n + 1.0)
    G[t][col + 1] = n + 1.0


def _nan(x: float) -> bool:
    return x != x


def fault_tick_ref(vals, ref, ktype, prim, peer_ptr, peer_idx, block_ticks, stuck_log_p, K, prev, ring, G, rep):
    """Plain-Python twin of :func:`fault_tick` (same state arrays, updated in place)."""
    n, F = vals.shape
    flags, logp, events, dtot = [0] * n, [0.0] * n, [0] * n, [0.0] * n
    reps = {}
    y = [float("nan")] * n
    for k in range(n):
        t = int(ktype[k])
        present = repeated = 0
        lp = 0.0
        for f in range(F):
            v = float(vals[k, f])
            if _nan(v):
                continue
            present += 1
            p = float(prev[k, f])
            if not _nan(p) and v != 0.0:
                same = v == p
                if same:
                    repeated += 1
                    lp += math.log((rep[t, f, 0] + 0.5) / (rep[t, f, 1] + 1.0))
                r = reps.setdefault((t, f), [0.0, 0.0])
                r[0] += 1.0 if same else 0.0
                r[1] += 1.0
            elif not _nan(p) and v == 0.0 and p == 0.0:
                repeated += 1
            prev[k, f] = v
        if present:
            if repeated == present and lp < 0.0:
                K[k, K_RUN] += lp
            elif repeated < present:
                K[k, K_RUN] = 0.0
        logp[k] = float(K[k, K_RUN])
        if K[k, K_RUN] < stuck_log_p:
            flags[k] |= FLAG_STUCK
        x = float(vals[k, prim[k]])
        if not _nan(x):
            lvl = float(G[t, G_LEVEL])
            y[k] = math.log(max(x, FLOOR_FRAC * lvl if lvl > 0.0 else 1e-9, 1e-9))
    for k in range(n):
        t = int(ktype[k])
        if _nan(y[k]):
            events[k] = bin(int(K[k, K_MASK])).count("1")
            continue
        mask = (int(K[k, K_MASK]) << 1) & ((1 << SPIKE_WINDOW) - 1)
        base = sorted(float(v) for v in K[k, K_YRING:] if not _nan(float(v)))
        out = 0.0
        if len(base) >= SPIKE_MIN_BASE:
            m = len(base)
            dev = abs(y[k] - (base[m // 2] if m % 2 else 0.5 * (base[m // 2 - 1] + base[m // 2])))
            scale = G[t, G_JAG] if G[t, G_JAG_N] >= 20.0 else SPIKE_PRIOR
            thr = max(SPIKE_MIN_LOG, SPIKE_K * scale)
            if dev > thr:
                out = 1.0
                y1 = float(K[k, K_Y1])
                if K[k, K_OUT] == 0.0 and not _nan(y1) and abs(y[k] - y1) > 0.5 * thr:
                    mask |= 1
            _pool_ref(G, t, G_JAG, min(dev, thr))
        K[k, K_OUT] = out
        K[k, K_YRING:] = np.append(K[k, K_YRING + 1:], y[k])
        K[k, K_MASK], K[k, K_Y1] = mask, y[k]
        events[k] = bin(mask).count("1")
        if events[k] >= SPIKE_MIN_EVENTS:
            flags[k] |= FLAG_SPIKES
    for k in range(n):
        t = int(ktype[k])
        if not _nan(y[k]) and peer_ptr[k + 1] == peer_ptr[k]:
            r = float(ref[k])
            if not _nan(r) and r > 0.0:
                K[k, K_BSUM] += y[k] - math.log(r)
                K[k, K_BN] += 1.0
        elif not _nan(y[k]):
            others = sorted(y[int(j)] for j in peer_idx[peer_ptr[k]:peer_ptr[k + 1]] if not _nan(y[int(j)]))
            if len(others) >= DRIFT_MIN_PEERS:
                m = len(others)
                med = others[m // 2] if m % 2 else 0.5 * (others[m // 2 - 1] + others[m // 2])
                K[k, K_BSUM] += y[k] - med
                K[k, K_BN] += 1.0
        K[k, K_BT] += 1.0
        if K[k, K_BT] >= block_ticks:
            ring[k, :-1] = ring[k, 1:].copy()
            ring[k, -1] = K[k, K_BSUM] / K[k, K_BN] if K[k, K_BN] > 0 else float("nan")
            K[k, K_BSUM] = K[k, K_BN] = K[k, K_BT] = 0.0
            scale = G[t, G_STEP] if G[t, G_STEP_N] >= 20.0 else DRIFT_PRIOR
            valid = [float(v) for v in ring[k] if not _nan(float(v))]
            steps = [b - a for a, b in zip(valid, valid[1:])]
            total = 0.0
            drift = 0
            if len(valid) >= DRIFT_MIN_BLOCKS:
                h = DRIFT_ENDS
                total = (sum(valid[-h:]) - sum(valid[:h])) / h
                if (abs(total) >= max(DRIFT_MIN_LOG, DRIFT_K * scale)
                        and max(abs(x) for x in steps) <= max(DRIFT_STEP_SHARE * abs(total), DRIFT_STEP_K * scale)):
                    drift = 1
            K[k, K_DRIFT], K[k, K_DTOT] = drift, total
            if len(valid) >= 2 and not _nan(float(ring[k, -1])):
                _pool_ref(G, t, G_STEP, min(abs(steps[-1]), 3.0 * scale))
        dtot[k] = float(K[k, K_DTOT])
        if K[k, K_DRIFT] > 0:
            flags[k] |= FLAG_DRIFT
    for k in range(n):
        x = float(vals[k, prim[k]])
        if not _nan(x) and x > 0.0:
            _pool_ref(G, int(ktype[k]), G_LEVEL, x)
    for (t, f), (a, b) in reps.items():
        rep[t, f, 0] += a
        rep[t, f, 1] += b
    return (np.array(flags, dtype=np.int64), np.array(logp), np.array(events, dtype=np.int64), np.array(dtot))


# --- dropout ------------------------------------------------------------------------------------

SILENT_K = 3.0
SILENT_MIN_MS = 15 * 60_000
GAP_MEMORY = 50.0
S_LAST = 0  # last-seen time (ms, -1: never)
S_GAP = 1  # mean gap between reports (ms)
S_GAP_N = 2
S_COLS = 3


def silence_state(n_keys: int) -> np.ndarray:
    S = np.zeros((n_keys, S_COLS))
    S[:, S_LAST] = -1.0
    return S


@njit(cache=True)
def silence_tick(last_seen_ms, now_ms, S):  # pragma: no cover - compiled
    """Silent flags (1) for sensors quiet for ``SILENT_K`` x their own mean gap (>= ``SILENT_MIN_MS``);
    ``last_seen_ms[k] < 0`` means never seen. Returns (flags, silent for ms)."""
    n = last_seen_ms.shape[0]
    flags = np.zeros(n, dtype=np.int64)
    quiet = np.zeros(n)
    for k in range(n):
        seen = last_seen_ms[k]
        if seen > S[k, S_LAST]:
            if S[k, S_LAST] >= 0.0:
                m = min(S[k, S_GAP_N], GAP_MEMORY)
                S[k, S_GAP] = (S[k, S_GAP] * m + (seen - S[k, S_LAST])) / (m + 1.0)
                S[k, S_GAP_N] = m + 1.0
            S[k, S_LAST] = seen
        if S[k, S_LAST] < 0.0 or S[k, S_GAP_N] < 1.0:
            continue
        quiet[k] = now_ms - S[k, S_LAST]
        if quiet[k] > max(SILENT_MIN_MS, SILENT_K * S[k, S_GAP]):
            flags[k] = 1
    return flags, quiet


def silence_tick_ref(last_seen_ms, now_ms: float, S) -> tuple[np.ndarray, np.ndarray]:
    """Plain-Python twin of :func:`silence_tick`."""
    flags, quiet = [], []
    for k, seen in enumerate(float(v) for v in last_seen_ms):
        if seen > S[k, S_LAST]:
            if S[k, S_LAST] >= 0.0:
                m = min(float(S[k, S_GAP_N]), GAP_MEMORY)
                S[k, S_GAP] = (S[k, S_GAP] * m + (seen - S[k, S_LAST])) / (m + 1.0)
                S[k, S_GAP_N] = m + 1.0
            S[k, S_LAST] = seen
        if S[k, S_LAST] < 0.0 or S[k, S_GAP_N] < 1.0:
            flags.append(0)
            quiet.append(0.0)
            continue
        q = now_ms - float(S[k, S_LAST])
        quiet.append(q)
        flags.append(1 if q > max(SILENT_MIN_MS, SILENT_K * S[k, S_GAP]) else 0)
    return np.array(flags, dtype=np.int64), np.array(quiet)


def warm_up() -> None:
    """Compile the kernels on tiny arrays."""
    st = fault_state(2, 1, 1)
    fault_tick(np.ones((2, 1)), np.full(2, np.nan), np.zeros(2, np.int64), np.zeros(2, np.int64), *peers_csr([[1], [0]]), 1, STUCK_LOG_P, *st)
    silence_tick(np.zeros(2), 1.0, silence_state(2))
