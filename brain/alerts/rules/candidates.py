"""From matched rows to alert candidates: labels, severity, point, evidence and summary.

Two builders give the same :class:`~brain.alerts.model.Candidate` for the same row:

- :func:`make_candidate`, the reference, takes one row as a dict (what the previous evaluator did
  for every matched row of every rule);
- :func:`build_candidates` takes all of a rule's matched rows as one frame, reads each needed
  column once (``to_list``), converts values in bulk, renders summaries with the rule's compiled
  :class:`~brain.alerts.rules.templates.Template`, and looks the city up through a memo. Where a
  row is odd (a ``None`` under a numeric format spec, a template with positional fields) it takes
  the reference path for that row, so the twins agree on every row (tests/alerts/test_rules_compiled.py).

Example:
    >>> import polars as pl
    >>> from brain.alerts.rules.locate import Locator
    >>> from brain.alerts.rules.packs import parse_rule_pack
    >>> rule = parse_rule_pack('''
    ... pack: p
    ... rules:
    ...   - {id: loud, kind: threshold, table: noise_sensor, value: laeq_db, op: ">", threshold: 55, severity: yellow,
    ...      labels_from: [sensor_id, cell_id], evidence: [limit_db], summary: "{sensor_id}: {value:.1f} dB in {cell}"}
    ... ''').rules[0]
    >>> rows = pl.DataFrame({"sensor_id": ["N1", "N2"], "cell_id": ["C1", None], "limit_db": [55, 55],
    ...                      "__value": [61.04, None]})
    >>> fast = build_candidates(rule, rows, 0, Locator(), "__value", threshold=55)
    >>> [(c.labels, c.value, c.summary, c.evidence) for c in fast]
    [({'rule': 'loud', 'sensor_id': 'N1', 'cell': 'C1'}, 61.04, 'N1: 61.0 dB in C1', {'value': 61.04, 'threshold': 55, 'limit_db': 55.0}), ({'rule': 'loud', 'sensor_id': 'N2'}, 0.0, 'N2: 0.0 dB in {cell}', {'value': 0.0, 'threshold': 55, 'limit_db': 55.0})]
    >>> fast == [make_candidate(rule, r, r["__value"], 0, Locator(), threshold=55) for r in rows.iter_rows(named=True)]
    True
"""
from __future__ import annotations

import math
import operator
from itertools import repeat

import numpy as np
import polars as pl

from brain.alerts.model import Candidate
from brain.alerts.rules.locate import Locator
from brain.alerts.rules.schema import CompositeRule, Rule
from brain.alerts.rules.templates import MAX_SUMMARY_CHARS, Fields, Template, cut_summary, render_summary

_MISSING = object()
_NUMERIC = (pl.Float64, pl.Float32, pl.Int64, pl.Int32, pl.Int16, pl.Int8, pl.UInt64, pl.UInt32, pl.UInt16, pl.UInt8,
            pl.Boolean)
_RENDER_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError)


def num(v: object) -> float:
    """A candidate's value as a finite float (anything else is 0.0: a value never breaks an alert)."""
    try:
        f = float(v)  # type: ignore[arg-type]
        return f if math.isfinite(f) else 0.0
    except (TypeError, ValueError):
        return 0.0


_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne}


def compare(e: pl.Expr, op: str, x: object) -> pl.Expr:
    """``e op x`` as a polars expression."""
    return _OPS[op](e, x)


def make_candidate(rule: Rule, row: dict, value: object, now_ms: int, locator: Locator, trigger: bool = True,
                   threshold: object = None, extra: dict | None = None) -> Candidate:
    """The reference: one row (a dict of its columns) to one candidate."""
    labels = {"rule": rule.id, **rule.labels}
    for col in rule.labels_from:
        v = row.get(col)
        if v is not None:
            labels[col] = str(v)
    if "cell_id" in labels:  # vital-sign tables say cell_id; alerts and subscriptions say cell
        labels.setdefault("cell", labels.pop("cell_id"))
    level = rule._level
    if rule.severity_from is not None:
        lv = row.get(rule.severity_from)
        if isinstance(lv, (int, float)) and int(lv) in (1, 2, 3, 4):
            level = int(lv)
    if isinstance(rule, CompositeRule):
        for col in rule.by:
            if row.get(col) is not None:
                labels[col] = str(row[col])
    lon, lat = locator.enrich(labels, row)
    val = num(value)
    evidence: dict[str, float | str] = {"value": round(val, 4)}
    if isinstance(threshold, (int, float)):
        evidence["threshold"] = threshold
    for col in rule.evidence:
        v = row.get(col)
        if v is not None:
            evidence[col] = v if isinstance(v, str) else round(num(v), 4)
    if extra:
        evidence.update({k: (v if isinstance(v, str) else round(num(v), 4)) for k, v in extra.items()})
    fields = Fields(row)
    fields.update(labels)
    fields.update(value=val, threshold=threshold)
    summary = cut_summary(render_summary(rule.summary, fields)) if rule.summary else f"{rule.id}: {val:g}"
    return Candidate(rule_id=rule.id, kind=rule._kind, severity=level, labels=labels, value=val, ts_ms=now_ms,
                     trigger=bool(trigger), summary=summary, evidence=evidence, for_ms=rule._for_ms,
                     keep_firing_for_ms=rule._keep_ms, lon=lon, lat=lat, digest_ms=rule._digest_ms)


def _values(s: pl.Series) -> list[float]:
    """:func:`num` of every element; in bulk for numeric columns (a cast is exact from these types)."""
    if s.dtype in _NUMERIC:
        a = s.cast(pl.Float64).to_numpy()  # nulls come out as NaN, and num() makes both 0.0
        return np.where(np.isfinite(a), a, 0.0).tolist()
    return [num(v) for v in s.to_list()]


def round4(a: np.ndarray) -> list[float]:
    """``[round(x, 4) for x in a]`` for finite floats, in bulk, exactly.

    ``rint(x * 1e4) / 1e4`` is the double nearest ``k / 10**4`` (an exact integer over an exact power,
    correctly rounded), which is what Python's ``round`` returns for the same ``k``; the two can pick a
    different ``k`` only when ``x * 1e4`` lies within its rounding error of a half-integer, or when
    ``x`` is too large for ``x * 1e4`` to be exact. Those few values take Python's ``round``.

    >>> round4(np.array([0.12345, 2.5e-5, -1.23456789, 1e300, 0.30000000000000004]))
    [0.1235, 0.0, -1.2346, 1e+300, 0.3]
    """
    a = np.asarray(a, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        f = a * 1e4
        out = np.rint(f) / 1e4
        frac = np.abs(f - np.floor(f) - 0.5)
        risky = ~(frac > 1e-12 * np.maximum(1.0, np.abs(f))) | ~(np.abs(a) < 1e11)  # error of f: ~1e-16 |f|
    res = out.tolist()
    for i in np.flatnonzero(risky).tolist():
        res[i] = round(float(a[i]), 4)
    return res


def _rounded(s: pl.Series) -> list:
    """Evidence of a column: strings as they are, anything else rounded :func:`num` (None stays None: left out)."""
    if s.dtype == pl.String:
        return s.to_list()
    if s.dtype in _NUMERIC and not s.null_count():
        return round4(np.array(_values(s)))
    return [v if v is None or isinstance(v, str) else round(num(v), 4) for v in s.to_list()]


def _as_str(s: pl.Series) -> list:
    """A label column as ``str(v)`` per element (no nulls here)."""
    return s.to_list() if s.dtype == pl.String else [str(v) for v in s.to_list()]


def _label_layout(rule: Rule, cols: list[str]) -> list[tuple[str, object]]:
    """(label, static value or column name) in the order :func:`make_candidate` inserts them, for a row
    whose ``labels_from`` columns are all set."""
    marker = object()
    d: dict[str, object] = {"rule": rule.id, **rule.labels}
    src: dict[str, object] = {}
    for c in cols:
        d[c] = marker
        src[c] = c
    if "cell_id" in d:
        had_cell = "cell" in d
        v = d.pop("cell_id")
        if not had_cell:
            d["cell"] = v
            src["cell"] = src.get("cell_id", None) if v is marker else None
    return [(k, ("col", src[k]) if v is marker else ("const", v)) for k, v in d.items()]


#: The labels :meth:`Locator.enrich` may add (a summary field among them is read after enrichment).
_LOCATED = {"segment_id", "sensor_id", "cell", "district", "street"}


def build_candidates(rule: Rule, rows: pl.DataFrame, now_ms: int, locator: Locator, value: str,
                     trigger: str | None = None, threshold: object = None, extra: dict[str, str] | None = None,
                     value_scale: float = 1.0) -> list[Candidate]:
    """All of ``rule``'s matched ``rows`` to candidates, column by column; equal to :func:`make_candidate`
    on each row as a dict (``value``, ``trigger`` and ``extra`` name columns of ``rows``; the value is
    ``rows[value] / value_scale``, as absence rules report milliseconds in seconds).

    Each column is read once; labels, evidence and summaries are built with one comprehension or one
    ``map`` each. A row with a missing label (a null in a ``labels_from`` column) takes the reference
    path, as does a summary whose positional rendering fails (the reference is forgiving)."""
    n = rows.height
    if n == 0:
        return []
    names = rows.columns
    have = set(names)
    vs = rows.get_column(value)
    if value_scale != 1.0:  # numpy divides exactly (polars multiplies by the reciprocal: 1 ulp off)
        a = vs.cast(pl.Float64).to_numpy() / value_scale
        vals = np.where(np.isfinite(a), a, 0.0).tolist()
    else:
        vals = _values(vs)
    if trigger is None:
        trigs: list = repeat(True)  # type: ignore[assignment]
    else:
        ts = rows.get_column(trigger)
        trigs = ts.to_list() if ts.dtype == pl.Boolean and not ts.null_count() else [bool(t) for t in ts.to_list()]
    label_cols = [c for c in rule.labels_from if c in have]
    odd: list[int] = []
    if label_cols and any(rows.get_column(c).null_count() for c in label_cols):
        odd = rows.select(pl.any_horizontal(pl.col(c).is_null() for c in label_cols)).to_series().arg_true().to_list()
    layout = _label_layout(rule, label_cols)
    keys = tuple(k for k, _ in layout)
    srcs = [repeat(v) if how == "const" else _as_str(rows.get_column(v)) for k, (how, v) in layout]
    labels = list(map(dict, map(zip, repeat(keys), zip(*srcs))))
    # where the alert is
    if locator.city:
        lon_in = rows.get_column("lon").to_list() if "lon" in have else repeat(None)
        lat_in = rows.get_column("lat").to_list() if "lat" in have else repeat(None)
        points = list(map(locator.enrich_cached, labels, lon_in, lat_in))
        lons = [p[0] for p in points]
        lats = [p[1] for p in points]
    elif "lon" in have and "lat" in have:
        lons, lats = [], []
        for lo, la in zip(rows.get_column("lon").to_list(), rows.get_column("lat").to_list()):
            ok = isinstance(lo, (int, float)) and isinstance(la, (int, float))
            lons.append(float(lo) if ok else None)
            lats.append(float(la) if ok else None)
    else:
        lons = lats = repeat(None)  # type: ignore[assignment]
    # severity
    if rule.severity_from is not None:
        lvs = rows.get_column(rule.severity_from).to_list() if rule.severity_from in have else [None] * n
        levels = [int(lv) if isinstance(lv, (int, float)) and int(lv) in (1, 2, 3, 4) else rule._level for lv in lvs]
    else:
        levels = repeat(rule._level)  # type: ignore[assignment]
    # evidence
    ev_keys = ["value"]
    ev_srcs: list = [round4(np.array(vals))]
    if isinstance(threshold, (int, float)):
        ev_keys.append("threshold")
        ev_srcs.append(repeat(threshold))
    ev_null = False
    for c in rule.evidence:
        if c in have:
            ev_keys.append(c)
            lst = _rounded(rows.get_column(c))
            ev_null = ev_null or None in lst
            ev_srcs.append(lst)
    for k, c in (extra or {}).items():
        ev_keys.append(k)
        ev_srcs.append([0.0 if v is None else v for v in _rounded(rows.get_column(c))])
    if ev_null:
        evidence = [{k: v for k, v in zip(ev_keys, t) if v is not None} for t in zip(*ev_srcs)]
    else:
        evidence = list(map(dict, map(zip, repeat(ev_keys), zip(*ev_srcs))))
    # summary
    tpl: Template = rule._template
    if not rule.summary:
        summaries = [f"{rule.id}: {v:g}" for v in vals]
    else:
        summaries = None
        if tpl.positional is not None:
            args = []
            for f in tpl.names:
                if f == "value":
                    args.append(vals)
                elif f == "threshold":
                    args.append(repeat(threshold))
                elif f in keys:
                    args.append(srcs[keys.index(f)])
                else:
                    raw = rows.get_column(f).to_list() if f in have else repeat("{" + f + "}")
                    if locator.city and f in _LOCATED:  # the city may have named it
                        raw = [lb.get(f, r) for lb, r in zip(labels, raw)]
                    args.append(raw)
            try:
                summaries = list(map(tpl.positional.format, *args))
            except _RENDER_ERRORS:
                summaries = None
        if summaries is None:  # some row is odd: the reference's forgiving rendering, row by row
            summaries = []
            for i in range(n):
                fields = Fields(zip(names, rows.row(i)))
                fields.update(labels[i])
                fields.update(value=vals[i], threshold=threshold)
                summaries.append(render_summary(rule.summary, fields))
        summaries = [s if len(s) <= MAX_SUMMARY_CHARS else cut_summary(s) for s in summaries]
    rid, kind, for_ms, keep_ms, digest_ms = rule.id, rule._kind, rule._for_ms, rule._keep_ms, rule._digest_ms
    # positionally, in Candidate's field order (one C call per candidate; checked in test_rules_compiled.py)
    out = list(map(Candidate, repeat(rid), repeat(kind), levels, labels, vals, repeat(now_ms), trigs, summaries, evidence,
                   repeat(for_ms), repeat(keep_ms), lons, lats, repeat(""), repeat(digest_ms)))
    if odd:  # rows missing a label: built by the reference from the row itself
        rv = rows.get_column(value).to_list()
        ex = {k: rows.get_column(c).to_list() for k, c in (extra or {}).items()}
        for i in odd:
            row = dict(zip(names, rows.row(i)))
            v = rv[i] if value_scale == 1.0 else (rv[i] or 0) / value_scale
            out[i] = make_candidate(rule, row, v, now_ms, locator, trigger=out[i].trigger, threshold=threshold,
                                    extra={k: lst[i] for k, lst in ex.items()} or None)
    return out
