"""Rule kinds whose work is per key or per group, not per row: absence from memory, multi-point
(多点触发) and composite rules. Both evaluators (reference and compiled) use these.

Example:
    >>> import polars as pl
    >>> from brain.alerts.rules.locate import Locator
    >>> from brain.alerts.rules.packs import parse_rule_pack
    >>> rule = parse_rule_pack('''
    ... pack: p
    ... rules:
    ...   - {id: quiet, kind: absence, table: noise_sensor, after: 10m, severity: blue, labels_from: [sensor_id]}
    ... ''').rules[0]
    >>> mem = {}
    >>> absence_seen(rule, pl.DataFrame({"sensor_id": ["N1", "N2"]}), 0, mem, Locator())
    []
    >>> [(c.labels["sensor_id"], c.value) for c in absence_seen(rule, pl.DataFrame({"sensor_id": ["N1"]}), 900_000, mem, Locator())]
    [('N2', 900.0)]
"""
from __future__ import annotations

import math
from itertools import repeat

import numpy as np
import polars as pl

from brain.alerts.model import Candidate
from brain.alerts.rules.candidates import compare, make_candidate
from brain.alerts.rules.locate import Locator
from brain.alerts.rules.schema import AbsenceRule, CompositeRule, MultipointRule, Signal


_NONE = object()


def absence_seen(rule: AbsenceRule, df: pl.DataFrame | None, now_ms: int, mem: dict, locator: Locator) -> list[Candidate]:
    """Keys (``labels_from``) seen in earlier windows and not for ``after`` (``where`` already applied)."""
    keys = rule.labels_from
    seen: dict[tuple, dict] = mem.setdefault("seen", {})
    if df is not None and df.height:
        cols = [c for c in keys if c in df.columns] + [c for c in ("lon", "lat") if c in df.columns and c not in keys]
        u = df.select(cols).unique(maintain_order=True)  # first-seen order: the order alerts come out in
        last = mem.get("seen_rows")  # this window's rows as last time: only their time moves (not persisted)
        if last is not None and last[0] is seen and last[1].equals(u):
            for r in last[2]:
                r["__seen_ms"] = now_ms
        else:
            ident = [(u.get_column(k).to_list() if u.schema[k] == pl.String
                      else [str(v) for v in u.get_column(k).to_list()]) if k in cols else None for k in keys]
            ident = [[("None" if v is None else v) for v in lst] if lst is not None and None in lst else lst
                     for lst in ident]
            names = (*cols, "__seen_ms")
            refs = []
            for k, vals in zip(zip(*[lst if lst is not None else repeat("") for lst in ident]), u.iter_rows()):
                r = seen.get(k)
                # a key seen again with the same columns only moves its time (no new dict per key per window)
                if r is not None and len(r) == len(names) and all(
                        type(r.get(c, _NONE)) is type(v) and r[c] == v for c, v in zip(cols, vals)):
                    r["__seen_ms"] = now_ms
                else:
                    r = seen[k] = dict(zip(names, (*vals, now_ms)))
                refs.append(r)
            mem["seen_rows"] = (seen, u, refs)
    after = rule._after_ms
    return [make_candidate(rule, r, (now_ms - r["__seen_ms"]) / 1000.0, now_ms, locator, threshold=after / 1000.0)
            for r in seen.values() if now_ms - r["__seen_ms"] > after]


def multipoint_hits(rule: MultipointRule, tables: dict[str, pl.DataFrame], now_ms: int, mem: dict,
                    matched: dict[int, pl.DataFrame] | None = None) -> dict[tuple, dict]:
    """Record this window's rows meeting each signal (``matched``: signal index → its rows with
    ``__value``, when the compiled plan already selected them) and forget hits older than ``window``."""
    hits: dict[tuple, dict] = mem.setdefault("hits", {})
    for i, sig in enumerate(rule.signals):
        if matched is not None and i in matched:
            rows = matched[i]
        else:
            df = tables.get(sig.table)
            if df is None or df.height == 0:
                continue
            if sig._where is not None:
                df = df.filter(sig._where)
            rows = df.with_columns(__value=sig._value)
            if not sig._rise_ms:
                rows = rows.filter(compare(pl.col("__value"), sig.op, sig.threshold).fill_null(False))
        if sig._rise_ms and rows.height:
            rows = rise_rows(sig, rows.filter(pl.col("__value").is_not_null()), now_ms,
                             mem.setdefault("rise", {}).setdefault(str(i), {}))
        for r in rows.iter_rows(named=True):
            r["__ts"], r["__feed"], r["__source"] = now_ms, sig.feed, f"{sig.feed}:{r[sig.source]}"
            hits[(sig.feed, r[sig.source])] = r
    for k in [k for k, r in hits.items() if now_ms - r["__ts"] > rule._window_ms]:
        del hits[k]
    return hits


def rise_rows(sig: Signal, rows: pl.DataFrame, now_ms: int, hist: dict[str, list]) -> pl.DataFrame:
    """Remember each source's value (``hist``: source → [[ms, value], ...], oldest first) and return the
    rows whose rise since the source's last value at least ``rise_over`` ago meets the signal, with
    ``__value`` the rise and ``__level`` the value itself."""
    span = sig._rise_ms
    keep, rises = [], []
    for k, (src, v) in enumerate(zip(rows.get_column(sig.source).to_list(), rows.get_column("__value").to_list())):
        past = hist.setdefault(str(src), [])
        if past and past[-1][0] == now_ms:
            past[-1][1] = float(v)
        else:
            past.append([now_ms, float(v)])
        while len(past) >= 2 and past[1][0] <= now_ms - span:  # keep one value at or before the span's start
            past.pop(0)
        t0, v0 = past[0]
        if not now_ms - 2 * span <= t0 <= now_ms - span:  # not enough history yet, or a gap: no baseline
            continue
        if sig.at_least is not None and not v >= sig.at_least:
            continue
        keep.append(k)
        rises.append(float(v) - v0)
    for src in [s for s, past in hist.items() if past[-1][0] < now_ms - 2 * span]:  # sources gone quiet
        del hist[src]
    out = rows[keep].with_columns(__level=pl.col("__value"), __value=pl.Series(rises, dtype=pl.Float64))
    return out.filter(compare(pl.col("__value"), sig.op, sig.threshold).fill_null(False))


def multipoint(rule: MultipointRule, tables: dict[str, pl.DataFrame], now_ms: int, mem: dict, locator: Locator,
               matched: dict[int, pl.DataFrame] | None = None) -> list[Candidate]:
    """多点触发: one candidate per area where at least ``min_sources`` distinct sources (or feeds) agree."""
    hits = multipoint_hits(rule, tables, now_ms, mem, matched)
    if not hits:
        return []
    ident = "__feed" if rule.distinct == "feed" else "__source"
    groups: list[list[dict]] = []
    if rule.group_by is not None:
        by: dict[str, list[dict]] = {}
        for r in hits.values():
            g = r.get(rule.group_by)
            if g is not None:
                by.setdefault(str(g), []).append(r)
        groups = list(by.values())
    else:
        pts = [r for r in hits.values() if r.get(rule.lon) is not None and r.get(rule.lat) is not None]
        groups = radius_clusters(pts, rule.radius_m, rule.lon, rule.lat, ident, rule.min_sources)
    out = []
    for members in groups:
        distinct = sorted({m[ident] for m in members})
        if len(distinct) < rule.min_sources:
            continue
        centre = max(members, key=lambda m: m["__ts"])
        row = dict(centre)
        if rule.group_by is not None:
            row[rule.group_by] = centre.get(rule.group_by)
        c = make_candidate(rule, row, float(len(distinct)), now_ms, locator, threshold=float(rule.min_sources),
                           extra={"sources": ",".join(distinct)})
        if rule.group_by is not None:
            c.labels["cell" if rule.group_by == "cell_id" else rule.group_by] = str(centre.get(rule.group_by))
        c.labels["sources"] = ",".join(sorted({m["__source"] for m in members}))
        out.append(c)
    return out


def composite(rule: CompositeRule, by_rule: dict[str, list[Candidate]], now_ms: int, locator: Locator) -> list[Candidate]:
    """AND/OR of the named rules' candidates that share the ``by`` labels (a trigger wins over a hold)."""
    groups: dict[tuple, dict[str, Candidate]] = {}
    for rid in rule.of:
        for c in by_rule.get(rid, []):
            key = tuple(c.labels.get(k, "") for k in rule.by)
            if rule.by and not all(key):
                continue
            prev = groups.setdefault(key, {}).get(rid)
            if prev is None or (c.trigger and not prev.trigger):
                groups[key][rid] = c
    out = []
    for key, members in groups.items():
        ok = len(members) == len(rule.of) if rule.op == "and" else bool(members)
        if not ok:
            continue
        trig = all(m.trigger for m in members.values()) if rule.op == "and" else any(m.trigger for m in members.values())
        row = dict(zip(rule.by, key))
        row.update({f"{rid}_value": m.value for rid, m in members.items()})
        c = make_candidate(rule, row, float(len(members)), now_ms, locator, trigger=trig, threshold=float(len(rule.of)),
                           extra={"rules": ",".join(sorted(members))})
        lons = [m.lon for m in members.values() if m.lon is not None]
        if lons and c.lon is None:
            first = next(m for m in members.values() if m.lon is not None)
            c.lon, c.lat = first.lon, first.lat
        out.append(c)
    return out


def radius_clusters(pts: list[dict], radius_m: float, lon: str, lat: str, ident: str, need: int) -> list[list[dict]]:
    """Greedy: repeatedly take the hit with most distinct sources within ``radius_m``; remove its neighbours."""
    if not pts:
        return []
    x = np.array([float(p[lon]) for p in pts])
    y = np.array([float(p[lat]) for p in pts])
    # local equirectangular metres: the rule's radius is a few km at most
    kx = 111_320.0 * math.cos(math.radians(float(np.mean(y))))
    dx = (x[:, None] - x[None, :]) * kx
    dy = (y[:, None] - y[None, :]) * 110_574.0
    near = (dx * dx + dy * dy) <= radius_m * radius_m
    alive = np.ones(len(pts), dtype=bool)
    out = []
    while alive.any():
        best, best_n = -1, 0
        for i in np.flatnonzero(alive):
            n = len({pts[j][ident] for j in np.flatnonzero(near[i] & alive)})
            if n > best_n:
                best, best_n = i, n
        if best_n < need:
            break
        members = np.flatnonzero(near[best] & alive)
        # the centre first so its location labels the alert
        out.append([pts[best]] + [pts[j] for j in members if j != best])
        alive[members] = False
    return out
