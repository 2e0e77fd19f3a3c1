"""Live re-planning: a new corridor plan only when measured flows shift materially.

:class:`CorridorReplanner` is fed one flow window at a time (from the detector aggregation) and
returns a new, safety-checked :class:`~brain.greenwave.plan.Plan` only when

* there is no plan yet, or
* the smoothed flows moved far enough from the flows the current plan was computed for — the
  largest relative change of any intersection's critical-flow-ratio sum, or of the directional
  demand ratio, exceeds ``threshold`` — **and** the current plan has been in force at least
  ``min_hold_ms``; and the candidate plan really differs (cycle, a split or an offset by more
  than ``min_change_s``).

Flows are smoothed with an exponential moving average (``smoothing`` = weight of the newest
window) so one noisy window cannot trigger a plan; comparing against the *planned-for* flows
rather than the previous window means a slow drift still re-plans once it adds up. That pair is
the hysteresis.

Interface (what the drivers call)::

    rp = CorridorReplanner(spec, threshold=0.15, min_hold_ms=900_000, smoothing=0.5)
    plan = rp.update(window_end_ms, phase_flows_vph, volume_out_vph=None, volume_in_vph=None)
    # plan is None, or a new Plan valid from window_end_ms + lead_ms
    rp.plan  # the plan in force (latest returned)

``phase_flows_vph`` maps intersection id -> per-phase critical flows (veh/h, phase order of
the spec; NaN or a missing intersection = no measurement, the last smoothed value is kept),
or is an array of shape (n_intersections, max_phases) padded with NaN.

Example:
    >>> import json
    >>> from brain.greenwave.model import CorridorSpec
    >>> spec = CorridorSpec.from_json(json.dumps({"id": "C", "intersections": [
    ...     {"id": "A", "position_m": 0, "phases": [{"name": "EW", "min_green_s": 15, "coordinated": True},
    ...                                             {"name": "NS", "min_green_s": 12}]},
    ...     {"id": "B", "position_m": 500, "phases": [{"name": "EW", "min_green_s": 15, "coordinated": True},
    ...                                               {"name": "NS", "min_green_s": 12}]}]}))
    >>> rp = CorridorReplanner(spec, min_hold_ms=0)
    >>> rp.update(0, {"A": [600, 300], "B": [650, 280]}) is not None   # first plan
    True
    >>> rp.update(300_000, {"A": [610, 290], "B": [640, 285]}) is None  # small wiggle: keep it
    True
    >>> rp.update(600_000, {"A": [1400, 250], "B": [1500, 260]}).cycle_s > rp.history[0].cycle_s
    True
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import msgspec
import numpy as np

from brain.greenwave.delay import modelled
from brain.greenwave.model import CorridorSpec
from brain.greenwave.optimizer import optimize_corridor
from brain.greenwave.plan import Plan
from brain.greenwave.webster import flow_ratios


#: A re-plan that only moves offsets must cut the modelled delay by more than this share.
MIN_DELAY_GAIN = 0.03


class CorridorReplanner:
    """Re-plans one corridor on material flow shifts (hysteresis; details in the module docstring).

    Parameters: ``spec`` (the corridor), ``threshold`` (relative flow change that triggers a
    re-plan, default 0.15), ``min_hold_ms`` (a plan stays in force at least this long, default
    15 min), ``smoothing`` (EWMA weight of the newest window, default 0.5), ``min_change_s``
    (smaller plan changes are not worth publishing), ``lead_ms`` (valid-from = window end + lead),
    ``warm_start`` (default on: a re-plan's offset search starts from the plan in force, see
    :func:`brain.greenwave.optimizer.optimize_corridor`; off: every plan searched cold).

    ``update(window_end_ms, phase_flows_vph, volume_out_vph=None, volume_in_vph=None)`` returns
    a new safety-checked :class:`Plan` or ``None``. ``phase_flows_vph``: ``{intersection_id:
    [veh/h per phase]}`` or an ``(n_intersections, max_phases)`` array, NaN = not measured.
    ``plan`` is the plan in force, ``history`` the recent ones, ``last_reason`` why the latest
    plan was made. ``state()`` / ``load(state)`` checkpoint it (plain data, pickle-safe) so a
    restarted engine keeps its hysteresis. Pure: no I/O, no clock.
    """

    def __init__(self, spec: CorridorSpec, threshold: float = 0.15, min_hold_ms: int = 900_000,
                 smoothing: float = 0.5, min_change_s: float = 1.0, lead_ms: int = 0, keep_history: int = 20,
                 warm_start: bool = True):
        if not (0 < threshold < 10):
            raise ValueError(f"threshold must be a relative change in (0, 10), got {threshold}")
        if min_hold_ms < 0:
            raise ValueError(f"min_hold_ms must be >= 0, got {min_hold_ms}")
        if not (0 < smoothing <= 1):
            raise ValueError(f"smoothing must be in (0, 1], got {smoothing}")
        if min_change_s < 0 or lead_ms < 0:
            raise ValueError("min_change_s and lead_ms must be >= 0")
        self.spec = spec
        self.threshold = threshold
        self.min_hold_ms = int(min_hold_ms)
        self.smoothing = smoothing
        self.min_change_s = min_change_s
        self.lead_ms = int(lead_ms)
        self.keep_history = keep_history
        self.warm_start = warm_start
        self._ids = [it.id for it in spec.intersections]
        self._nph = [len(it.phases) for it in spec.intersections]
        self._flows = np.full((spec.n, max(self._nph)), np.nan)
        self._volumes = np.array([np.nan, np.nan])
        self._planned_y: np.ndarray | None = None
        self._planned_k: float | None = None
        self._planned_at_ms: int | None = None
        self.plan: Plan | None = None
        self.history: list[Plan] = []
        #: Why the latest plan was made: "first plan", or the flow shift that triggered it.
        self.last_reason: str = ""

    # ------------------------------------------------------------------ input
    def _as_array(self, phase_flows_vph) -> np.ndarray:
        arr = np.full_like(self._flows, np.nan)
        if isinstance(phase_flows_vph, Mapping):
            for iid, flows in phase_flows_vph.items():
                if iid not in self._ids:
                    raise ValueError(f"unknown intersection {iid!r} for corridor {self.spec.id!r}")
                i = self._ids.index(iid)
                vals = np.asarray(flows, dtype=np.float64)
                if vals.shape != (self._nph[i],):
                    raise ValueError(f"intersection {iid!r} has {self._nph[i]} phases, got {vals.shape[0] if vals.ndim else 0} flows")
                arr[i, : self._nph[i]] = vals
        else:
            vals = np.asarray(phase_flows_vph, dtype=np.float64)
            if vals.ndim != 2 or vals.shape[0] != self.spec.n or vals.shape[1] < max(self._nph):
                raise ValueError(f"phase_flows_vph must have shape ({self.spec.n}, {max(self._nph)}), got {vals.shape}")
            arr[:, :] = vals[:, : arr.shape[1]]
        if np.any(arr[~np.isnan(arr)] < 0) or np.any(np.isinf(arr)):
            raise ValueError("flows must be finite and >= 0 veh/h")
        return arr

    def _smooth(self, old: np.ndarray, new: np.ndarray) -> np.ndarray:
        a = self.smoothing
        out = np.where(np.isnan(old), new, a * new + (1 - a) * old)
        return np.where(np.isnan(new), old, out)

    def _spec_now(self) -> CorridorSpec:
        spec = msgspec.json.decode(msgspec.json.encode(self.spec), type=CorridorSpec)
        for i, it in enumerate(spec.intersections):
            for k, p in enumerate(it.phases):
                v = self._flows[i, k]
                if not math.isnan(v):
                    p.flow_vph = float(v)
        vo, vi = self._volumes
        if not (math.isnan(vo) or math.isnan(vi)):
            spec.volume_out_vph, spec.volume_in_vph = float(vo), float(vi)
        return spec

    # ----------------------------------------------------------------- update
    def update(self, window_end_ms: int, phase_flows_vph: Mapping[str, Sequence[float]] | np.ndarray,
               volume_out_vph: float | None = None, volume_in_vph: float | None = None) -> Plan | None:
        """Feed one window; returns a new plan or ``None`` (keep the current one)."""
        self._flows = self._smooth(self._flows, self._as_array(phase_flows_vph))
        vol = np.array([np.nan if volume_out_vph is None else volume_out_vph,
                        np.nan if volume_in_vph is None else volume_in_vph], dtype=np.float64)
        if np.any(vol[~np.isnan(vol)] < 0):
            raise ValueError("directional volumes must be >= 0 veh/h")
        self._volumes = self._smooth(self._volumes, vol)
        spec = self._spec_now()
        y = np.array([flow_ratios(it).sum() for it in spec.intersections])
        k = self._ratio(spec)
        reason = "first plan"
        if self.plan is not None:
            if window_end_ms - (self._planned_at_ms or 0) < self.min_hold_ms:
                return None
            if self._shift(y, k) <= self.threshold:
                return None
            reason = self._describe_shift(y, k)
        # warm start: the offsets in force seed the search (a third of a cold search's work, and
        # offsets move only where the model gains by it: fewer transitions)
        candidate = optimize_corridor(spec, valid_from_ms=int(window_end_ms) + self.lead_ms, choose_cycle=False,
                                      warm_start=self.plan if self.warm_start else None)
        if self.plan is not None and (not self._differs(candidate, self.plan) or self._no_real_gain(spec, candidate)):
            # the flows moved but the plan would not: adopt them as the new reference anyway
            self._planned_y, self._planned_k, self._planned_at_ms = y, k, int(window_end_ms)
            return None
        self._planned_y, self._planned_k, self._planned_at_ms = y, k, int(window_end_ms)
        self.plan = candidate
        self.last_reason = reason
        self.history.append(candidate)
        del self.history[: -self.keep_history]
        return candidate

    @staticmethod
    def _ratio(spec: CorridorSpec) -> float:
        if spec.volume_out_vph is None or spec.volume_in_vph is None:
            return 1.0
        return (spec.volume_in_vph + 1.0) / (spec.volume_out_vph + 1.0)

    def _shift(self, y: np.ndarray, k: float) -> float:
        ref_y = self._planned_y
        dy = float(np.max(np.abs(y - ref_y) / np.maximum(ref_y, 0.05)))
        dk = abs(math.log(k / self._planned_k))
        return max(dy, dk)

    def _describe_shift(self, y: np.ndarray, k: float) -> str:
        ref_y = self._planned_y
        rel = np.abs(y - ref_y) / np.maximum(ref_y, 0.05)
        i = int(np.argmax(rel))
        dk = abs(math.log(k / self._planned_k))
        if dk > float(rel[i]):
            return f"directional demand in/out {self._planned_k:.2f} -> {k:.2f}"
        return f"flow ratio sum at {self._ids[i]} {ref_y[i]:.2f} -> {y[i]:.2f}"

    # ------------------------------------------------------------- checkpoint
    def state(self) -> dict:
        """Everything :meth:`update` depends on, as plain data (see :meth:`load`)."""
        return {
            "corridor": self.spec.id,
            "flows": self._flows.copy(),
            "volumes": self._volumes.copy(),
            "planned_y": None if self._planned_y is None else self._planned_y.copy(),
            "planned_k": self._planned_k,
            "planned_at_ms": self._planned_at_ms,
            "plan": None if self.plan is None else msgspec.json.encode(self.plan),
            "history": [msgspec.json.encode(p) for p in self.history],
            "last_reason": self.last_reason,
        }

    def load(self, state: dict) -> "CorridorReplanner":
        """Continue from :meth:`state` of a replanner of the same corridor (same phases)."""
        if state.get("corridor") != self.spec.id:
            raise ValueError(f"replanner state is for corridor {state.get('corridor')!r}, not {self.spec.id!r}")
        flows = np.asarray(state["flows"], dtype=np.float64)
        if flows.shape != self._flows.shape:
            raise ValueError(f"replanner state of {self.spec.id!r} has flows of shape {flows.shape}, "
                             f"the corridor needs {self._flows.shape} (intersections or phases changed)")
        self._flows = flows.copy()
        self._volumes = np.asarray(state["volumes"], dtype=np.float64).copy()
        self._planned_y = None if state["planned_y"] is None else np.asarray(state["planned_y"], dtype=np.float64).copy()
        self._planned_k = state["planned_k"]
        self._planned_at_ms = state["planned_at_ms"]
        self.plan = None if state["plan"] is None else msgspec.json.decode(state["plan"], type=Plan)
        self.history = [msgspec.json.decode(p, type=Plan) for p in state["history"]]
        self.last_reason = state.get("last_reason", "")
        return self

    def _no_real_gain(self, spec: CorridorSpec, candidate: Plan) -> bool:
        """Same cycle and splits, other offsets, and the current offsets model within
        :data:`MIN_DELAY_GAIN` of the candidate's delay: the offset search lands in a neighbouring
        optimum under noise, and a transition costs more than that."""
        cur = self.plan
        if abs(candidate.cycle_s - cur.cycle_s) > self.min_change_s:
            return False
        for x, y in zip(candidate.intersections, cur.intersections):
            if any(abs(p.green_s - q.green_s) > self.min_change_s for p, q in zip(x.phases, y.phases)):
                return False
        greens = [np.array([p.green_s for p in it.phases]) for it in candidate.intersections]
        ko = [spec.intersections[i].phase_index("out") for i in range(spec.n)]
        starts_new = [it.offset_s + it.phase_start_s(k) for it, k in zip(candidate.intersections, ko)]
        starts_cur = [it.offset_s + it.phase_start_s(k) for it, k in zip(cur.intersections, ko)]
        d_new = modelled(spec, candidate.cycle_s, greens, starts_new)["delay_s_per_veh"]
        d_cur = modelled(spec, candidate.cycle_s, greens, starts_cur)["delay_s_per_veh"]
        return d_cur <= d_new * (1.0 + MIN_DELAY_GAIN)

    def _differs(self, a: Plan, b: Plan) -> bool:
        if abs(a.cycle_s - b.cycle_s) > self.min_change_s:
            return True
        for x, y in zip(a.intersections, b.intersections):
            d = abs(x.offset_s - y.offset_s) % a.cycle_s
            if min(d, a.cycle_s - d) > self.min_change_s:
                return True
            if any(abs(p.green_s - q.green_s) > self.min_change_s for p, q in zip(x.phases, y.phases)):
                return True
        return False
