"""The previous evaluator, kept as the reference twin of :mod:`brain.alerts.rules.compiled`.

One query per rule per window, and one Python dict per matched row turned into a candidate by
:func:`~brain.alerts.rules.candidates.make_candidate`: simple, and ~15 µs per candidate row. The
compiled evaluator must give the same candidates in the same order (tests/alerts/test_rules_compiled.py);
``bench/alert_speed.py`` times both in the same run. Multi-point, composite and row-memory absence
rules are evaluated by :mod:`brain.alerts.rules.kinds` in both.

Example:
    >>> import polars as pl
    >>> from brain.alerts.rules.locate import Locator
    >>> from brain.alerts.rules.packs import parse_rule_pack
    >>> rule = parse_rule_pack('''
    ... pack: p
    ... rules:
    ...   - {id: jam, kind: threshold, table: t, value: tti, op: ">=", threshold: 2.0, clear: 1.7, severity: yellow,
    ...      labels_from: [segment_id]}
    ... ''').rules[0]
    >>> t = {"t": pl.DataFrame({"segment_id": ["S1", "S2", "S3"], "tti": [2.4, 1.8, 1.2]})}
    >>> [(c.labels["segment_id"], c.trigger) for c in evaluate_rule_ref(rule, t, 0, {}, Locator())]
    [('S1', True), ('S2', False)]
"""
from __future__ import annotations

import polars as pl

from brain.alerts.model import Candidate
from brain.alerts.rules.candidates import compare, make_candidate
from brain.alerts.rules.kinds import absence_seen, multipoint
from brain.alerts.rules.locate import Locator
from brain.alerts.rules.schema import AbsenceRule, MultipointRule, RateRule, Rule


def evaluate_rule_ref(rule: Rule, tables: dict[str, pl.DataFrame], now_ms: int, mem: dict,
                      locator: Locator) -> list[Candidate]:
    """One rule (not composite) over one window's tables; ``mem`` is the rule's memory across windows."""
    if isinstance(rule, MultipointRule):
        return multipoint(rule, tables, now_ms, mem, locator)
    df = tables.get(rule.table)
    if isinstance(rule, AbsenceRule):
        return absence_ref(rule, df, now_ms, mem, locator)
    if df is None or df.height == 0:
        return []
    if rule._where is not None:
        df = df.filter(rule._where)
    if isinstance(rule, RateRule):
        return rate_ref(rule, df, now_ms, mem, locator)
    v = rule._value
    trig = compare(v, rule.op, rule.threshold)
    hold = compare(v, rule.op, rule.clear) if rule.clear is not None else trig
    rows = df.select(*[c for c in df.columns if c in rule._row_cols], __value=v, __trigger=trig.fill_null(False),
                     __hold=hold.fill_null(False)).filter(pl.col("__hold") | pl.col("__trigger"))
    return [make_candidate(rule, r, r["__value"], now_ms, locator, trigger=r["__trigger"], threshold=rule.threshold)
            for r in rows.iter_rows(named=True)]


def rate_ref(rule: RateRule, df: pl.DataFrame, now_ms: int, mem: dict, locator: Locator) -> list[Candidate]:
    """Change per ``per`` against the previous window's value of the same key (``where`` already applied)."""
    keys = rule.labels_from
    cur = df.with_columns(__value=rule._value.cast(pl.Float64)).filter(pl.col("__value").is_not_null())
    prev: pl.DataFrame | None = mem.get("prev")
    mem["prev"] = cur.select([*keys, pl.col("__value").alias("__prev"), pl.lit(now_ms).alias("__prev_ms")])
    if prev is None:
        return []
    j = rate_join(rule, cur, prev, now_ms)
    return [make_candidate(rule, r, r["__rate"], now_ms, locator, threshold=rule.threshold, extra={"previous": r["__prev"]})
            for r in j.iter_rows(named=True)]


def rate_join(rule: RateRule, cur: pl.DataFrame, prev: pl.DataFrame, now_ms: int) -> pl.DataFrame:
    """Rows of ``cur`` whose change since ``prev`` meets the rule, with ``__prev`` and ``__rate``."""
    j = cur.join(prev, on=rule.labels_from, how="inner").filter(pl.col("__prev_ms") < now_ms)
    dt = (now_ms - pl.col("__prev_ms")) / rule._per_ms
    change = pl.col("__value") - pl.col("__prev")
    if rule.mode == "pct":
        change = pl.when(pl.col("__prev") != 0).then(change / pl.col("__prev").abs() * 100.0).otherwise(None)
    return j.with_columns(__rate=change / dt).filter(compare(pl.col("__rate"), rule.op, rule.threshold).fill_null(False))


def absence_ref(rule: AbsenceRule, df: pl.DataFrame | None, now_ms: int, mem: dict, locator: Locator) -> list[Candidate]:
    """Keys whose ``last_seen`` is older than ``after`` (or never set); without ``last_seen``, keys the
    engine stopped seeing (:func:`~brain.alerts.rules.kinds.absence_seen`)."""
    if df is not None and rule._where is not None and df.height:
        df = df.filter(rule._where)
    if rule.last_seen is None:
        return absence_seen(rule, df, now_ms, mem, locator)
    if df is None or df.height == 0:
        return []
    rows = df.with_columns(__age_ms=now_ms - pl.col(rule.last_seen)).filter(
        pl.col("__age_ms").is_null() | (pl.col("__age_ms") > rule._after_ms))
    return [make_candidate(rule, r, (r["__age_ms"] or 0) / 1000.0, now_ms, locator, threshold=rule._after_ms / 1000.0)
            for r in rows.iter_rows(named=True)]
