r"""Rule pack files: YAML in, validated :class:`RulePack` out, checked together before any is used.

A pack's ``defaults`` (labels, ``for``, ``keep_firing_for``) are merged into each rule before
validation, so every error names the file and the rule id. :func:`load_rule_packs` reads a folder
(``rules/*.yaml``, the shipped packs) and checks ids unique across packs and composites' references.

Example:
    >>> pack = parse_rule_pack('''
    ... pack: demo
    ... defaults: {labels: {category: traffic}, for: 10m}
    ... rules:
    ...   - {id: jam, kind: threshold, table: segment_traffic, value: tti, op: ">=", threshold: 2.0, severity: yellow}
    ... ''', "demo.yaml")
    >>> (pack.rules[0].labels, pack.rules[0]._for_ms, rule_columns(pack.rules[0]))
    ({'category': 'traffic'}, 600000, {'segment_traffic': {'tti'}})
    >>> parse_rule_pack("pack: p\nrules:\n  - {id: x, kind: threshold, table: t, value: v, op: '=>', threshold: 1, severity: red}", "p.yaml")
    Traceback (most recent call last):
    ...
    brain.alerts.rules.schema.RuleError: p.yaml: rule 'x': Invalid enum value '=>' - at `$.rules[0].op`
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import msgspec
import polars as pl
import yaml

from brain.alerts.rules.schema import (AbsenceRule, CompositeRule, MultipointRule, Rule, RuleError, RulePack)


def rule_schema() -> dict:
    """The JSON Schema of a rule pack (what ``rules/schema.json`` ships)."""
    return msgspec.json.schema(RulePack)


def parse_rule_pack(text: str, source: str = "<string>") -> RulePack:
    """Parse and validate one pack from YAML text; raises :class:`RuleError` naming ``source``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RuleError(f"{source}: a rule pack must be a mapping with 'pack' and 'rules'")
    defaults = data.get("defaults") or {}
    if isinstance(defaults, dict) and isinstance(data.get("rules"), list):
        for r in data["rules"]:
            if isinstance(r, dict):
                if isinstance(defaults.get("labels"), dict):
                    r["labels"] = {**defaults["labels"], **(r.get("labels") or {})}
                for key in ("for", "keep_firing_for"):
                    if defaults.get(key) is not None and key not in r:
                        r[key] = defaults[key]
    try:
        pack = msgspec.convert({**data, "source_file": source}, RulePack, str_keys=True)
    except msgspec.ValidationError as exc:
        raise RuleError(f"{source}: {_locate_error(exc, data)}") from None
    ids = [r.id for r in pack.rules]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise RuleError(f"{source}: duplicate rule id(s) {dup}")
    try:
        pack.inhibit_rules()
    except ValueError as exc:
        raise RuleError(f"{source}: inhibit: {exc}") from None
    try:
        pack.correlate_rules()
    except ValueError as exc:
        raise RuleError(f"{source}: correlate: {exc}") from None
    return pack


def _locate_error(exc: msgspec.ValidationError, data: dict) -> str:
    """Name the rule (by id) in msgspec's ``at `$.rules[3].op``` paths."""
    msg = str(exc)
    m = re.search(r"\$\.rules\[(\d+)\]", msg)
    if m and isinstance(data.get("rules"), list) and int(m.group(1)) < len(data["rules"]):
        r = data["rules"][int(m.group(1))]
        if isinstance(r, dict) and r.get("id"):
            return f"rule {r['id']!r}: {msg}"
    return msg


def load_rule_packs(path: str | os.PathLike) -> list[RulePack]:
    """All ``*.yaml``/``*.yml`` packs in a folder (sorted) or one file; checks ids unique across packs
    and composite references."""
    p = Path(path)
    if not p.exists():
        raise RuleError(f"{p}: no such file or folder")
    files = sorted(list(p.glob("*.yaml")) + list(p.glob("*.yml"))) if p.is_dir() else [p]
    packs = [parse_rule_pack(f.read_text(encoding="utf-8"), str(f)) for f in files]
    check_packs(packs)
    return packs


def check_packs(packs: list[RulePack]) -> None:
    """Rule ids unique across packs; composites name loaded rules other than themselves."""
    seen: dict[str, str] = {}
    for pack in packs:
        for r in pack.rules:
            if r.id in seen:
                raise RuleError(f"{pack.source_file}: rule id {r.id!r} already defined in {seen[r.id]}")
            seen[r.id] = pack.source_file
    for pack in packs:
        for r in pack.rules:
            if isinstance(r, CompositeRule):
                missing = [x for x in r.of if x not in seen]
                if missing:
                    raise RuleError(f"{pack.source_file}: composite rule {r.id!r} refers to unknown rule(s) {missing}")
                if r.id in r.of:
                    raise RuleError(f"{pack.source_file}: composite rule {r.id!r} refers to itself")


def default_rules_dir() -> Path:
    """The packs shipped in the ``rules`` package."""
    from importlib.resources import files

    return Path(str(files("rules")))


def rule_columns(rule: Rule) -> dict[str, set[str]]:
    """Table → column names a rule reads (for reports and for checking against real vital-sign tables)."""
    out: dict[str, set[str]] = {}

    def add(table: str, *exprs: pl.Expr | None, names: list[str] = ()) -> None:
        cols = out.setdefault(table, set())
        for e in exprs:
            if e is not None:
                cols.update(e.meta.root_names())
        cols.update(n for n in names if n)

    if isinstance(rule, MultipointRule):
        for s in rule.signals:
            extra = [s.source, *(rule.labels_from), rule.group_by or "", *([rule.lon, rule.lat] if rule.radius_m else [])]
            add(s.table, s._value, s._where, names=extra)
    elif isinstance(rule, CompositeRule):
        pass
    elif isinstance(rule, AbsenceRule):
        add(rule.table, rule._where, names=[*rule.labels_from, rule.last_seen or ""])
    else:
        add(rule.table, rule._value, rule._where,
            names=list(rule.labels_from) + list(rule.evidence) + [rule.severity_from or ""])
    return out
