"""Measured corridor flows: how detector volumes on a city's segments become re-planning input.

:class:`CorridorFlows` resolves, once, which road segments measure a corridor, from the city's
geometry rather than from segment naming:

* **links** — for each pair of consecutive intersections, the segment(s) whose line starts within
  ``tolerance_m`` of one and ends within ``tolerance_m`` of the other. Starting at the lower
  position and ending at the higher one is *outbound* (the direction of increasing
  ``positions_m``), the other way *inbound*. Every link must have both, else construction fails
  with the link named.
* **arterial approaches** of an intersection — the link segments ending there, plus any of its
  ``approach_segments`` whose heading is within ``parallel_deg`` of the corridor's local axis (a
  stretch of the same road beyond the corridor's end). **Cross-street approaches** are its other
  ``approach_segments``.

Per window (volumes as veh/h per segment, NaN = no data), :meth:`CorridorFlows.compute` gives
the replanner's inputs:

* coordinated phase: the largest per-lane arterial approach flow (the critical lane group;
  veh/h/lane, comparable with the 1800 veh/h/lane saturation flow);
* other phases: the largest per-lane cross-street approach flow shared equally among the
  intersection's non-coordinated phases. Detectors count segment volumes, not turning
  movements, so the cross flow is counted once in the flow-ratio sum rather than once per phase;
  an intersection with no cross-street detectors gets NaN (= not measured: the replanner keeps
  its default ratios);
* directional volumes: the mean over links of the outbound (inbound) link volume, veh/h —
  MAXBAND's weights of the two bands.

Example:
    >>> from brain.city import demo_city_path, load_city
    >>> city = load_city(demo_city_path())
    >>> cf = CorridorFlows.from_city(city, "jiefang")
    >>> cf.links_out[0], cf.links_in[0]
    (['JF-01E'], ['JF-01W'])
    >>> import numpy as np
    >>> vph = np.full((1, len(cf.segment_ids)), 1200.0)   # one window, every segment 1200 veh/h
    >>> flows, out, inb = cf.compute(vph)
    >>> flows.shape == (1, len(cf.intersection_ids), cf.max_phases), float(out[0])
    (True, 1200.0)
"""
from __future__ import annotations

import math

import numpy as np

_EARTH_M_PER_DEG = 111_320.0


class CorridorFlows:
    """Which segments measure a corridor, and per-window phase flows from their volumes.

    Build with :meth:`from_city`; attributes: ``corridor_id``, ``intersection_ids``,
    ``n_phases`` (per intersection), ``max_phases``, ``coordinated`` (bool per intersection and
    phase, padded False), ``segment_ids`` (every segment read, the column order of
    :meth:`compute`'s input), ``links_out`` / ``links_in`` (segment ids per link),
    ``arterial`` / ``cross`` (approach segment ids per intersection).
    """

    def __init__(self, corridor_id: str, intersection_ids: list[str], phases_coordinated: list[list[bool]],
                 links_out: list[list[str]], links_in: list[list[str]], arterial: list[list[str]],
                 cross: list[list[str]], lanes: dict[str, int]):
        n = len(intersection_ids)
        if n < 2:
            raise ValueError(f"corridor {corridor_id!r} needs at least 2 intersections, has {n}")
        for name, lst, want in (("links_out", links_out, n - 1), ("links_in", links_in, n - 1),
                                ("arterial", arterial, n), ("cross", cross, n), ("phases", phases_coordinated, n)):
            if len(lst) != want:
                raise ValueError(f"corridor {corridor_id!r}: {name} has {len(lst)} entries, expected {want}")
        self.corridor_id = corridor_id
        self.intersection_ids = list(intersection_ids)
        self.n_phases = [len(p) for p in phases_coordinated]
        self.max_phases = max(self.n_phases)
        self.coordinated = np.zeros((n, self.max_phases), dtype=bool)
        for i, p in enumerate(phases_coordinated):
            if not any(p):
                raise ValueError(f"corridor {corridor_id!r}: intersection {intersection_ids[i]!r} has no coordinated phase")
            self.coordinated[i, : len(p)] = p
        self.links_out, self.links_in = links_out, links_in
        self.arterial, self.cross = arterial, cross
        ids = sorted({s for group in (links_out, links_in, arterial, cross) for lst in group for s in lst})
        missing = [s for s in ids if s not in lanes]
        if missing:
            raise ValueError(f"corridor {corridor_id!r}: no lane count for segments {missing}")
        self.segment_ids = ids
        self._col = {s: k for k, s in enumerate(ids)}
        self._lanes = np.array([max(int(lanes[s]), 1) for s in ids], dtype=np.float64)

    # ------------------------------------------------------------------ build
    @classmethod
    def from_city(cls, city, corridor_id: str, tolerance_m: float = 25.0, parallel_deg: float = 30.0) -> "CorridorFlows":
        """Resolve a city corridor's segments from geometry (see the module docstring)."""
        if tolerance_m <= 0:
            raise ValueError(f"tolerance_m must be > 0, got {tolerance_m}")
        if not (0 < parallel_deg < 90):
            raise ValueError(f"parallel_deg must be in (0, 90), got {parallel_deg}")
        try:
            cor = city.corridor(corridor_id)
        except KeyError:
            names = ", ".join(sorted(c.id for c in city.corridors)) or "none"
            raise ValueError(f"unknown corridor {corridor_id!r} (the city has: {names})") from None
        inters = [city.intersection(i) for i in cor.intersections]
        lat0 = sum(x.lat for x in inters) / len(inters)
        kx = _EARTH_M_PER_DEG * math.cos(math.radians(lat0))

        def xy(lon: float, lat: float) -> np.ndarray:
            return np.array([lon * kx, lat * _EARTH_M_PER_DEG])

        nodes = [xy(x.lon, x.lat) for x in inters]
        segs = {s.id: s for s in city.segments}

        def near(p, q) -> bool:
            return float(np.hypot(*(p - q))) <= tolerance_m

        ends = {sid: (xy(*s.line[0][:2]), xy(*s.line[-1][:2])) for sid, s in segs.items() if len(s.line) >= 2}
        links_out, links_in, problems = [], [], []
        for i in range(len(inters) - 1):
            a, b = nodes[i], nodes[i + 1]
            out = sorted(sid for sid, (p, q) in ends.items() if near(p, a) and near(q, b))
            inb = sorted(sid for sid, (p, q) in ends.items() if near(p, b) and near(q, a))
            for lst, frm, to, d in ((out, i, i + 1, "outbound"), (inb, i + 1, i, "inbound")):
                if not lst:
                    problems.append(f"no segment runs {inters[frm].id} -> {inters[to].id} ({d})")
            links_out.append(out)
            links_in.append(inb)
        if problems:
            raise ValueError(
                f"corridor {corridor_id!r}: cannot resolve its segments: " + "; ".join(problems)
                + f" (a segment's line must start within {tolerance_m:g} m of one intersection and end within "
                f"{tolerance_m:g} m of the next)")
        arterial, cross = [], []
        cos_par = math.cos(math.radians(parallel_deg))
        for i, x in enumerate(inters):
            own = set(links_out[i - 1] if i > 0 else []) | set(links_in[i] if i < len(inters) - 1 else [])
            axis = nodes[min(i + 1, len(nodes) - 1)] - nodes[max(i - 1, 0)]
            axis = axis / max(float(np.hypot(*axis)), 1e-9)
            art, crs = set(own), set()
            for sid in x.approach_segments:
                if sid in own:
                    continue
                if sid not in ends:
                    raise ValueError(f"corridor {corridor_id!r}: intersection {x.id!r} lists unknown approach segment {sid!r}")
                p, q = ends[sid]
                d = q - p
                heading = d / max(float(np.hypot(*d)), 1e-9)
                (art if abs(float(heading @ axis)) >= cos_par else crs).add(sid)
            arterial.append(sorted(art))
            cross.append(sorted(crs))
        return cls(cor.id, [x.id for x in inters], [[bool(p.coordinated) for p in x.phases] for x in inters],
                   links_out, links_in, arterial, cross, {sid: s.lanes for sid, s in segs.items()})

    # ---------------------------------------------------------------- compute
    def compute(self, volume_vph: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Replanner inputs of ``T`` windows from ``volume_vph`` of shape ``(T, len(segment_ids))``
        (veh/h per segment, NaN = no data).

        Returns ``(phase_flows_vph (T, n, max_phases), volume_out_vph (T,), volume_in_vph (T,))``,
        NaN where nothing was measured (and in the padding of intersections with fewer phases).
        """
        v = np.asarray(volume_vph, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] != len(self.segment_ids):
            raise ValueError(f"volume_vph must have shape (T, {len(self.segment_ids)}), got {v.shape}")
        if np.any(v[~np.isnan(v)] < 0) or np.any(np.isinf(v)):
            raise ValueError("volumes must be finite and >= 0 veh/h")
        per_lane = v / self._lanes
        T, n = v.shape[0], len(self.intersection_ids)
        flows = np.full((T, n, self.max_phases), np.nan)
        for i in range(n):
            coord = self.coordinated[i]
            art = _nanmax(per_lane, [self._col[s] for s in self.arterial[i]])
            flows[:, i, coord] = art[:, None]
            others = np.flatnonzero(~coord[: self.n_phases[i]])
            if len(others) and self.cross[i]:
                crs = _nanmax(per_lane, [self._col[s] for s in self.cross[i]])
                flows[:, i, others] = (crs / len(others))[:, None]
        return flows, self._direction(v, self.links_out), self._direction(v, self.links_in)

    def _direction(self, v: np.ndarray, links: list[list[str]]) -> np.ndarray:
        per_link = np.full((v.shape[0], len(links)), np.nan)
        for j, segs in enumerate(links):
            cols = v[:, [self._col[s] for s in segs]]
            has = ~np.all(np.isnan(cols), axis=1)
            per_link[has, j] = np.nansum(cols[has], axis=1)
        out = np.full(v.shape[0], np.nan)
        has = ~np.all(np.isnan(per_link), axis=1)
        out[has] = np.nanmean(per_link[has], axis=1)
        return out


def _nanmax(values: np.ndarray, cols: list[int]) -> np.ndarray:
    """Row-wise max over ``cols`` ignoring NaN; NaN where every column is NaN (or no columns)."""
    out = np.full(values.shape[0], np.nan)
    if not cols:
        return out
    sub = values[:, cols]
    has = ~np.all(np.isnan(sub), axis=1)
    out[has] = np.nanmax(sub[has], axis=1)
    return out
