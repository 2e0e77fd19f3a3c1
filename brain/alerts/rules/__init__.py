"""Rule packs (YAML, validated against a typed schema) and the rule engine that evaluates them per window.

A rule selects a vital-sign table and a column expression instead of hard-coding column names:
``value`` and ``where`` are SQL expressions over the table's columns (``tti``, ``aqi * 1.0``,
``status = 'silent'``), parsed when the pack loads. Rule kinds:

- ``threshold``: ``value op threshold`` with optional hysteresis ``clear`` level and ``for`` duration.
- ``rate``: change of ``value`` per ``per`` between consecutive windows for the same key (``abs`` or ``pct``).
- ``absence``: a key (sensor, feed) not seen for ``after``; from a ``last_seen`` column if the table
  has one, else from the rows the engine saw.
- ``anomaly``: the anomaly score table (``key``, ``score``) above a threshold.
- ``multipoint`` (多点触发): at least ``min_sources`` independent sources (or feeds) meeting their
  conditions within ``window``, in the same ``group_by`` cell/district or within ``radius_m``.
- ``composite``: AND/OR of other rules' alerts that share the ``by`` labels.

Every rule has a severity (red/orange/yellow/blue or I-IV), static ``labels`` (category, …),
``labels_from`` columns (segment_id, district, cell, …) that identify the alert, and a ``summary``
template formatted with the row's columns plus ``value`` and ``threshold``. A pack may also carry
inhibit rules.

The package, one concept per module:

- :mod:`~brain.alerts.rules.schema`: the rule kinds as typed structs (validated on load);
- :mod:`~brain.alerts.rules.packs`: YAML files → validated packs, checks across packs, columns read;
- :mod:`~brain.alerts.rules.templates`: summary templates (bounds, compiled positional form);
- :mod:`~brain.alerts.rules.locate`: street/district/cell and a point from the city model;
- :mod:`~brain.alerts.rules.candidates`: matched rows → candidates (per row, and column by column);
- :mod:`~brain.alerts.rules.compiled`: the rules compiled once per reload into one pass per table;
- :mod:`~brain.alerts.rules.reference`: the previous evaluator, the compiled plan's twin;
- :mod:`~brain.alerts.rules.kinds`: absence from memory, multi-point and composite rules;
- :mod:`~brain.alerts.rules.engine`: :class:`RuleEngine` (reloads, per-rule memory, restarts).

Example:
    >>> import polars as pl
    >>> pack = parse_rule_pack('''
    ... pack: demo
    ... rules:
    ...   - id: segment_congested
    ...     kind: threshold
    ...     table: segment_traffic
    ...     value: tti
    ...     op: ">="
    ...     threshold: 2.0
    ...     clear: 1.7
    ...     severity: yellow
    ...     labels: {category: traffic}
    ...     labels_from: [segment_id, district]
    ...     summary: "TTI {value:.2f} on {segment_id}"
    ... ''')
    >>> eng = RuleEngine([pack])
    >>> seg = pl.DataFrame({"segment_id": ["S1", "S2", "S3"], "district": ["D1"] * 3, "tti": [2.4, 1.8, 1.2]})
    >>> [(c.labels["segment_id"], c.trigger, c.summary) for c in eng.evaluate({"segment_traffic": seg}, 0)]
    [('S1', True, 'TTI 2.40 on S1'), ('S2', False, 'TTI 1.80 on S2')]
"""
from __future__ import annotations

from brain.alerts.rules.candidates import make_candidate
from brain.alerts.rules.compiled import CompiledRules
from brain.alerts.rules.engine import ReferenceRuleEngine, RuleEngine
from brain.alerts.rules.locate import Locator
from brain.alerts.rules.packs import (check_packs, default_rules_dir, load_rule_packs, parse_rule_pack, rule_columns,
                                      rule_schema)
from brain.alerts.rules.schema import (AbsenceRule, AnomalyRule, CompositeRule, CorrelateSpec, InhibitSpec,
                                       MultipointRule, PackDefaults, RateRule, Rule, RuleError, RulePack, Signal,
                                       ThresholdRule, parse_digest_period)
from brain.alerts.rules.templates import MAX_FIELD_WIDTH, MAX_SUMMARY_CHARS, MAX_TEMPLATE_CHARS, Template

__all__ = ["AbsenceRule", "AnomalyRule", "CompiledRules", "CompositeRule", "CorrelateSpec", "InhibitSpec", "Locator",
           "MAX_FIELD_WIDTH", "MAX_SUMMARY_CHARS", "MAX_TEMPLATE_CHARS", "MultipointRule", "PackDefaults", "RateRule",
           "ReferenceRuleEngine", "Rule", "RuleEngine", "RuleError", "RulePack", "Signal", "Template", "ThresholdRule",
           "check_packs", "default_rules_dir", "load_rule_packs", "make_candidate", "parse_digest_period",
           "parse_rule_pack", "rule_columns", "rule_schema"]
