"""Rules compiled once per reload into one pass over each window's tables.

:class:`CompiledRules` groups the rules by the table they read and their ``where`` clause (rules
sharing a filter share it). For each group, every rule's (and every multi-point signal's)
``value``, trigger and hold conditions become columns of ONE ``with_columns`` over the group's
rows; the groups of all tables are collected together in one ``polars.collect_all`` per window
(common sub-plans once, groups in parallel). Each rule then takes its matched rows with one filter
on a boolean column and turns them into candidates column by column
(:func:`~brain.alerts.rules.candidates.build_candidates`): no query per rule over the raw table,
no Python dict per row. A ``where`` is applied before the values are computed, exactly as the
reference does, so an aggregate in a value (``tti - avg(tti)``) sees the same rows.

What stays with the reference (:mod:`brain.alerts.rules.reference`), rule by rule and window by
window, so results never differ:

- a rule whose columns are missing from this window's table (the reference reports the error);
- a group whose pass fails (a type error in one rule, a ``where`` that is not boolean): each of
  its rules on its own, so one bad rule is reported and the others still run;
- a rule whose ``where`` leaves no row (the reference's memory handling of an empty frame).

Example:
    >>> import polars as pl
    >>> from brain.alerts.rules.locate import Locator
    >>> from brain.alerts.rules.packs import parse_rule_pack
    >>> rules = parse_rule_pack('''
    ... pack: p
    ... rules:
    ...   - {id: jam, kind: threshold, table: seg, value: tti, op: ">=", threshold: 2.0, severity: yellow, labels_from: [segment_id]}
    ...   - {id: slow, kind: threshold, table: seg, value: speed, op: "<", threshold: 15, severity: blue, labels_from: [segment_id],
    ...      where: "tti > 1"}
    ... ''').rules
    >>> plan = CompiledRules(rules)
    >>> plan.groups
    {('seg', None): ['jam'], ('seg', 'tti > 1'): ['slow']}
    >>> seg = pl.DataFrame({"segment_id": ["S1", "S2"], "tti": [2.5, 1.5], "speed": [12.0, 9.0]})
    >>> got = plan.evaluate({"seg": seg}, 0, lambda rule: {}, Locator(), {})
    >>> [(rid, [c.labels["segment_id"] for c in cs]) for rid, cs in got.items()]
    [('jam', ['S1']), ('slow', ['S1', 'S2'])]
"""
from __future__ import annotations

import gc
from typing import Callable

import polars as pl

from brain.alerts.model import Candidate
from brain.alerts.rules.candidates import build_candidates, compare
from brain.alerts.rules.kinds import absence_seen, multipoint
from brain.alerts.rules.locate import Locator
from brain.alerts.rules.reference import evaluate_rule_ref, rate_join
from brain.alerts.rules.schema import (AbsenceRule, AnomalyRule, CompositeRule, MultipointRule, RateRule, Rule,
                                       ThresholdRule)

#: What a failing rule raises (recorded in ``errors``, never raised in the middle of a window).
RULE_ERRORS = (pl.exceptions.PolarsError, KeyError, TypeError, ValueError)


_NOTHING = pl.DataFrame()


def _take(wide: pl.DataFrame, mask: str, exprs: list) -> pl.DataFrame:
    """The rows of ``wide`` where the boolean column ``mask`` holds, as ``exprs`` (only those columns are filtered)."""
    return wide.select(*exprs, pl.col(mask).alias("__cb_mask")).filter(pl.col("__cb_mask")).drop("__cb_mask")


def error_text(exc: Exception) -> str:
    """How a rule's failure is reported: the exception's type and first line."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


Group = tuple[str, "str | None"]  # (table, where clause or None)


class _Entry:
    """One rule (or one multi-point signal) in its group's pass: the columns it adds, named ``__cb<k>_*``."""

    __slots__ = ("rule", "sig", "k", "roots", "static", "masked")

    def __init__(self, rule: Rule, k: int, sig: int | None = None):
        self.rule, self.sig, self.k = rule, sig, k
        src = rule.signals[sig] if sig is not None else rule  # type: ignore[union-attr]
        exprs = [e for e in (getattr(src, "_value", None), src._where) if e is not None]
        roots = {n for e in exprs for n in e.meta.root_names()}
        if isinstance(rule, AbsenceRule) and rule.last_seen is not None:
            roots.add(rule.last_seen)
        self.roots = roots
        # built once per reload; only an age (absence from a last-seen column) depends on the window
        self.static = None if isinstance(rule, AbsenceRule) and rule.last_seen is not None else self.exprs(0)
        self.masked = not (isinstance(rule, AbsenceRule) and rule.last_seen is None)

    def col(self, name: str) -> str:
        return f"__cb{self.k}_{name}"

    def exprs(self, now_ms: int) -> list[pl.Expr]:
        rule = self.rule
        if self.sig is not None:
            sig = rule.signals[self.sig]  # type: ignore[union-attr]
            # a rise signal remembers every value (its threshold is on the rise: brain.alerts.rules.kinds.rise_rows)
            hit = sig._value.is_not_null() if sig._rise_ms else compare(sig._value, sig.op, sig.threshold).fill_null(False)
            return [sig._value.alias(self.col("v")), hit.alias(self.col("m"))]
        if isinstance(rule, (ThresholdRule, AnomalyRule)):
            v = rule._value
            trig = compare(v, rule.op, rule.threshold).fill_null(False)
            hold = compare(v, rule.op, rule.clear).fill_null(False) if rule.clear is not None else trig
            return [v.alias(self.col("v")), trig.alias(self.col("t")), hold.alias(self.col("h")),
                    (trig | hold).alias(self.col("m"))]
        if isinstance(rule, RateRule):
            v = rule._value.cast(pl.Float64)
            return [v.alias(self.col("v")), v.is_not_null().alias(self.col("m"))]
        if isinstance(rule, AbsenceRule) and rule.last_seen is not None:
            age = now_ms - pl.col(rule.last_seen)
            return [age.alias(self.col("v")), (age.is_null() | (age > rule._after_ms)).alias(self.col("m"))]
        return []  # absence from memory: only the group's rows


class CompiledRules:
    """The evaluation plan of a set of rules (built once per reload); :meth:`evaluate` per window.

    :attr:`groups` maps each (table, where) group to the rules in its pass (the plan, for reports and tests).
    """

    def __init__(self, rules: list[Rule]):
        self.rules = [r for r in rules if not isinstance(r, CompositeRule)]
        self._plans: dict[Group, list[_Entry]] = {}
        self._where: dict[Group, pl.Expr] = {}
        k = 0
        for rule in self.rules:
            parts = ([(i, s.table, s.where, s._where) for i, s in enumerate(rule.signals)]
                     if isinstance(rule, MultipointRule) else [(None, rule.table, rule.where, rule._where)])
            for sig, table, where, where_expr in parts:
                group = (table, where)
                self._plans.setdefault(group, []).append(_Entry(rule, k, sig))
                if where_expr is not None:
                    self._where[group] = where_expr
                k += 1
        self.groups = {g: list(dict.fromkeys(e.rule.id for e in es)) for g, es in self._plans.items()}

    def _passes(self, tables: dict[str, pl.DataFrame], now_ms: int) -> dict[tuple[str, int | None], tuple]:
        """Every group's pass, collected together: (rule id, signal) → (the group's frame, its entry)."""
        lazy, entries = [], []
        for group, plan in self._plans.items():
            df = tables.get(group[0])
            if df is None or df.height == 0:
                continue
            have = set(df.columns)
            live = [e for e in plan if e.roots <= have]
            if not live:
                continue
            lf = df.lazy()
            if group in self._where:
                lf = lf.filter(self._where[group])
            lazy.append(lf.with_columns([x for e in live for x in (e.static if e.static is not None else e.exprs(now_ms))]))
            entries.append(live)
        try:
            frames = pl.collect_all(lazy)
        except RULE_ERRORS:  # one group failed: find it (its rules go to the reference, one by one)
            frames = []
            for lf in lazy:
                try:
                    frames.append(lf.collect())
                except RULE_ERRORS:
                    frames.append(None)
        done = {}
        for wide, live in zip(frames, entries):
            if wide is not None and wide.height:
                # how many rows each rule matched, in one call: most rules match nothing in most windows
                masked = [e for e in live if e.masked]
                counts = wide.select([pl.col(e.col("m")).sum() for e in masked]).row(0) if masked else ()
                hits = dict(zip((e.k for e in masked), counts))
                for e in live:
                    done[(e.rule.id, e.sig)] = (wide, e, hits.get(e.k, -1))
        return done

    def evaluate(self, tables: dict[str, pl.DataFrame], now_ms: int, mem_of: Callable[[Rule], dict],
                 locator: Locator, errors: dict[str, str]) -> dict[str, list[Candidate]]:
        """Candidates per rule id (rule order; composites excluded), updating ``errors`` like the reference."""
        done = self._passes(tables, now_ms)
        out: dict[str, list[Candidate]] = {}
        # Tens of thousands of candidates (each a struct and two dicts, no cycles) would trigger the cyclic
        # collector every ~700 allocations, each pass re-walking the young ones: ~20 % of the time. One
        # collection of them all happens after, when it is back on.
        paused = gc.isenabled()
        gc.disable()
        try:
            for rule in self.rules:
                try:
                    out[rule.id] = self._rule(rule, tables, now_ms, mem_of(rule), locator, done)
                    errors.pop(rule.id, None)
                except RULE_ERRORS as exc:
                    errors[rule.id] = error_text(exc)
                    out[rule.id] = []
        finally:
            if paused:
                gc.enable()
        return out

    def _rule(self, rule: Rule, tables: dict[str, pl.DataFrame], now_ms: int, mem: dict, locator: Locator,
              done: dict) -> list[Candidate]:
        if isinstance(rule, MultipointRule):
            matched = {}
            for i, sig in enumerate(rule.signals):
                got = done.get((rule.id, i))
                if got is not None:
                    wide, e, n = got
                    if n == 0:
                        matched[i] = _NOTHING
                        continue
                    cols = [c for c in tables[sig.table].columns if c != "__value"]
                    matched[i] = _take(wide, e.col("m"), [*cols, pl.col(e.col("v")).alias("__value")])
            return multipoint(rule, tables, now_ms, mem, locator, matched)
        got = done.get((rule.id, None))
        if got is None:
            df = tables.get(rule.table)  # type: ignore[union-attr]
            if df is None or df.height == 0:
                if isinstance(rule, AbsenceRule) and rule.last_seen is None:
                    return absence_seen(rule, df, now_ms, mem, locator)
                return []
            return evaluate_rule_ref(rule, tables, now_ms, mem, locator)
        wide, e, n = got
        if n == 0 and not isinstance(rule, RateRule):  # a rate rule still remembers this window's values
            return []
        cols = tables[rule.table].columns  # type: ignore[union-attr]
        m, v = e.col("m"), pl.col(e.col("v"))
        if isinstance(rule, (ThresholdRule, AnomalyRule)):
            rows = _take(wide, m, [*[c for c in cols if c in rule._row_cols], v.alias("__value"),
                                   pl.col(e.col("t")).alias("__trigger"), pl.col(e.col("h")).alias("__hold")])
            return build_candidates(rule, rows, now_ms, locator, "__value", "__trigger", threshold=rule.threshold)
        if isinstance(rule, RateRule):
            cur = _take(wide, m, [*[c for c in cols if c != "__value"], v.alias("__value")])
            prev: pl.DataFrame | None = mem.get("prev")
            mem["prev"] = cur.select([*rule.labels_from, pl.col("__value").alias("__prev"), pl.lit(now_ms).alias("__prev_ms")])
            if prev is None:
                return []
            rows = rate_join(rule, cur, prev, now_ms)
            return build_candidates(rule, rows, now_ms, locator, "__rate", threshold=rule.threshold,
                                    extra={"previous": "__prev"})
        assert isinstance(rule, AbsenceRule)
        if rule.last_seen is None:
            return absence_seen(rule, wide.select(cols), now_ms, mem, locator)
        rows = _take(wide, m, [*[c for c in cols if c != "__age_ms"], v.alias("__age_ms")])
        return build_candidates(rule, rows, now_ms, locator, "__age_ms", threshold=rule._after_ms / 1000.0,
                                value_scale=1000.0)
