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

import io
import math
import os
import re
import string
from pathlib import Path
from typing import Literal, Union

import msgspec
import numpy as np
import polars as pl
import yaml

from brain.alerts.correlation import CorrelateRule
from brain.alerts.enrich import Enricher
from brain.alerts.roadgraph import RoadNetwork
from brain.alerts.inhibition import InhibitRule
from brain.alerts.model import Candidate, parse_duration_ms, parse_severity
from brain.alerts.routing import point_in_polygon

Op = Literal[">", ">=", "<", "<=", "==", "!="]
Duration = Union[str, int, float]


class RuleError(ValueError):
    """A rule pack that cannot be used; the message names the file and the rule."""


_mp_enc = msgspec.msgpack.Encoder()
_LOCATION_COLS = ("lon", "lat", "sensor_id", "segment_id", "cell_id", "cell", "district", "street")


class _Rule(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, tag_field="kind", dict=True):
    id: str
    severity: Union[str, int]
    summary: str = ""
    description: str = ""
    labels: dict[str, str] = {}
    labels_from: list[str] = []
    evidence: list[str] = []
    severity_from: str | None = None  # a column holding the level 1..4 per row (e.g. incident severity)
    for_: Duration = msgspec.field(default=0, name="for")
    keep_firing_for: Duration = 0
    # "daily", "hourly", "weekly" or a duration: the condition is expected (e.g. rush-hour congestion), so
    # its alerts go to each subscriber's periodic digest instead of paging, unless they are part of an
    # incident that pages (see brain.alerts.correlation)
    digest: Duration | None = None
    enabled: bool = True

    def __post_init__(self) -> None:
        if not self.id or not all(ch.isalnum() or ch in "_-." for ch in self.id):
            raise ValueError(f"rule id must be letters, digits, '_', '-' or '.', got {self.id!r}")
        self._level = parse_severity(self.severity)
        self._kind = type(self).__struct_config__.tag  # type: ignore[attr-defined]
        self._for_ms = parse_duration_ms(self.for_)
        self._keep_ms = parse_duration_ms(self.keep_firing_for)
        self._digest_ms = parse_digest_period(self.digest) if self.digest is not None else 0
        names = _template_fields(self.summary)
        for name in names:
            if not name.isidentifier():
                raise ValueError(f"summary placeholder {{{name}}} must be a column name")
        _check_template_bounds(self.summary)
        # the only row columns a candidate needs (so wide tables are not turned into wide dicts)
        self._row_cols = {*names, *self.labels_from, *self.evidence, *_LOCATION_COLS, self.severity_from or ""}

    @property
    def kind(self) -> str:
        return type(self).__struct_config__.tag  # type: ignore[attr-defined]


_PERIODS = {"hourly": "1h", "daily": "1d", "weekly": "7d"}


def parse_digest_period(value: object) -> int:
    """Milliseconds of a digest period: ``hourly``, ``daily``, ``weekly`` or a positive duration."""
    try:
        ms = parse_duration_ms(_PERIODS.get(str(value).strip().lower(), value))
    except ValueError:
        ms = 0
    if ms <= 0:
        raise ValueError(f"digest period must be hourly, daily, weekly or a positive duration, got {value!r}")
    return ms


def _expr(text: str, what: str) -> pl.Expr:
    try:
        return pl.sql_expr(text)
    except Exception as exc:  # polars raises SQLInterfaceError / SQLSyntaxError
        raise ValueError(f"{what} {text!r} is not a valid SQL expression: {exc}") from None


def _check_op(op: str, threshold: object, clear: object, rid: str) -> None:
    if op in (">", ">=", "<", "<=") and not isinstance(threshold, (int, float)):
        raise ValueError(f"rule {rid}: threshold must be a number for op {op!r}")
    if clear is None:
        return
    if op not in (">", ">=", "<", "<="):
        raise ValueError(f"rule {rid}: clear (hysteresis) needs op >, >=, < or <=")
    if op in (">", ">=") and clear > threshold:
        raise ValueError(f"rule {rid}: clear {clear} must not be above threshold {threshold} for op {op!r}")
    if op in ("<", "<=") and clear < threshold:
        raise ValueError(f"rule {rid}: clear {clear} must not be below threshold {threshold} for op {op!r}")


class ThresholdRule(_Rule, tag="threshold"):
    """``value op threshold``; with ``clear``, an active alert holds until the value crosses ``clear``."""

    table: str
    value: str
    op: Op
    threshold: Union[float, str]
    clear: float | None = None
    where: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_op(self.op, self.threshold, self.clear, self.id)
        self._value = _expr(self.value, "value")
        self._where = _expr(self.where, "where") if self.where else None


class AnomalyRule(_Rule, tag="anomaly"):
    """Anomaly score above ``threshold`` (``clear`` for hysteresis) in the ``anomaly`` table."""

    threshold: float
    table: str = "anomaly"
    value: str = "score"
    clear: float | None = None
    where: str | None = None
    op: Op = ">="

    def __post_init__(self) -> None:
        if not self.labels_from:
            self.labels_from = ["key"]
        super().__post_init__()
        _check_op(self.op, self.threshold, self.clear, self.id)
        self._value = _expr(self.value, "value")
        self._where = _expr(self.where, "where") if self.where else None


class RateRule(_Rule, tag="rate"):
    """Change of ``value`` per ``per`` between consecutive windows, per ``labels_from`` key."""

    table: str
    value: str
    op: Op
    threshold: float
    per: Duration = "1m"
    mode: Literal["abs", "pct"] = "abs"
    where: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.labels_from:
            raise ValueError(f"rule {self.id}: a rate rule needs labels_from (the key to follow over time)")
        _check_op(self.op, self.threshold, None, self.id)
        self._per_ms = parse_duration_ms(self.per)
        if self._per_ms <= 0:
            raise ValueError(f"rule {self.id}: per must be positive")
        self._value = _expr(self.value, "value")
        self._where = _expr(self.where, "where") if self.where else None


class AbsenceRule(_Rule, tag="absence"):
    """A key not seen for ``after``: from the ``last_seen`` column (ms) if given, else from rows seen."""

    table: str
    after: Duration
    last_seen: str | None = None
    where: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.labels_from:
            raise ValueError(f"rule {self.id}: an absence rule needs labels_from (what may go quiet)")
        self._after_ms = parse_duration_ms(self.after)
        if self._after_ms <= 0:
            raise ValueError(f"rule {self.id}: after must be positive")
        self._where = _expr(self.where, "where") if self.where else None


class Signal(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, dict=True):
    """One feed's condition in a multi-point rule; ``source`` names the column identifying the terminal."""

    table: str
    value: str
    op: Op
    threshold: Union[float, str]
    where: str | None = None
    source: str = "sensor_id"
    feed: str = ""

    def __post_init__(self) -> None:
        _check_op(self.op, self.threshold, None, f"signal on {self.table}")
        self._value = _expr(self.value, "value")
        self._where = _expr(self.where, "where") if self.where else None
        if not self.feed:
            self.feed = self.table


class MultipointRule(_Rule, tag="multipoint"):
    """多点触发: at least ``min_sources`` distinct sources (or feeds) agree within ``window`` and an area."""

    signals: list[Signal]
    min_sources: int = 2
    distinct: Literal["source", "feed"] = "source"
    window: Duration = "10m"
    group_by: str | None = None
    radius_m: float | None = None
    lon: str = "lon"
    lat: str = "lat"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.signals:
            raise ValueError(f"rule {self.id}: a multipoint rule needs at least one signal")
        if self.min_sources < 2:
            raise ValueError(f"rule {self.id}: min_sources must be at least 2")
        if (self.group_by is None) == (self.radius_m is None):
            raise ValueError(f"rule {self.id}: set exactly one of group_by (a cell/district column) or radius_m")
        if self.radius_m is not None and self.radius_m <= 0:
            raise ValueError(f"rule {self.id}: radius_m must be positive")
        self._window_ms = parse_duration_ms(self.window)


class CompositeRule(_Rule, tag="composite"):
    """AND/OR of other rules' alerts sharing the ``by`` labels (evaluated after the rules it names)."""

    op: Literal["and", "or"]
    of: list[str]
    by: list[str] = []  # labels the combined alerts must share (YAML reads a bare ``on`` as true)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.of) < 2:
            raise ValueError(f"rule {self.id}: a composite needs at least two rules in 'of'")


Rule = Union[ThresholdRule, AnomalyRule, RateRule, AbsenceRule, MultipointRule, CompositeRule]


class InhibitSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    source: list[str]
    target: list[str]
    equal: list[str] = []


class CorrelateSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Alerts matching ``target`` belong to the incident of an active alert matching ``source`` that shares
    the ``equal`` labels (and lies within ``within_m`` metres, when set)."""

    source: list[str]
    target: list[str]
    equal: list[str] = []
    within_m: float | None = None
    upstream_m: float | None = None  # the target's segment feeds the source's within this many metres of road


class PackDefaults(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    labels: dict[str, str] = {}
    for_: Duration | None = msgspec.field(default=None, name="for")
    keep_firing_for: Duration | None = None


class RulePack(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One YAML file: a named pack of rules, pack-wide defaults and inhibit rules."""

    pack: str
    rules: list[Rule]
    version: int = 1
    description: str = ""
    defaults: PackDefaults = msgspec.field(default_factory=PackDefaults)
    inhibit: list[InhibitSpec] = []
    correlate: list[CorrelateSpec] = []
    source_file: str = ""

    def inhibit_rules(self) -> list[InhibitRule]:
        return [InhibitRule(i.source, i.target, i.equal) for i in self.inhibit]

    def correlate_rules(self) -> list[CorrelateRule]:
        """The pack's correlation links; every inhibit rule is one too (what explains an alert is its incident)."""
        return ([CorrelateRule(i.source, i.target, i.equal) for i in self.inhibit]
                + [CorrelateRule(c.source, c.target, c.equal, c.within_m, c.upstream_m) for c in self.correlate])


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
    import re

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


# --- evaluation ------------------------------------------------------------------------------------

class _Fmt(string.Formatter):
    """``str.format`` that leaves unknown placeholders visible instead of raising."""

    def get_value(self, key, args, kwargs):
        if isinstance(key, str) and key not in kwargs:
            return "{" + key + "}"
        return super().get_value(key, args, kwargs)

    def format_field(self, value, spec):
        try:
            return super().format_field(value, spec)
        except (ValueError, TypeError):
            return str(value)


_FMT = _Fmt()


class _Fields(dict):
    """Row fields for ``str.format_map``; an unknown placeholder stays visible as ``{name}``."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


#: Bounds of a summary template: a width or precision past MAX_FIELD_WIDTH (``{x:>300000000}``)
#: would make every alert a gigabyte string; a rendered summary is cut at MAX_SUMMARY_CHARS.
MAX_FIELD_WIDTH = 200
MAX_TEMPLATE_CHARS = 2000
MAX_SUMMARY_CHARS = 2000
_SPEC_NUMBER = re.compile(r"\d+")


def _check_template_bounds(text: str) -> None:
    """Refuse a summary template whose output could be unbounded (rules are data, not code)."""
    if len(text) > MAX_TEMPLATE_CHARS:
        raise ValueError(f"summary is {len(text)} characters long (at most {MAX_TEMPLATE_CHARS})")
    for _, name, spec, _ in string.Formatter().parse(text):
        if not spec:
            continue
        if "{" in spec:
            raise ValueError(f"summary placeholder {{{name}:{spec}}}: a nested placeholder in a format spec is not allowed")
        big = [int(n) for n in _SPEC_NUMBER.findall(spec) if int(n) > MAX_FIELD_WIDTH]
        if big:
            raise ValueError(f"summary placeholder {{{name}:{spec}}}: width or precision {big[0]} is more than {MAX_FIELD_WIDTH}")


def _template_fields(text: str) -> list[str]:
    try:
        return [f for _, f, _, _ in string.Formatter().parse(text) if f]
    except ValueError as exc:
        raise ValueError(f"summary {text!r}: {exc}") from None


def _compare(e: pl.Expr, op: str, x: object) -> pl.Expr:
    return {">": e > x, ">=": e >= x, "<": e < x, "<=": e <= x, "==": e == x, "!=": e != x}[op]


def _num(v: object) -> float:
    try:
        f = float(v)  # type: ignore[arg-type]
        return f if math.isfinite(f) else 0.0
    except (TypeError, ValueError):
        return 0.0


class Locator:
    """Adds ``street``/``district`` labels and a point (lon, lat) from the city model, when one is given.

    A ``key`` label (detector output) naming a segment, sensor, cell or district gets the matching label.
    """

    def __init__(self, city=None):
        self.city = city
        self._sensor = {s.id: s for s in city.sensors} if city else {}
        self._cell = {c.id: c for c in city.cells} if city else {}
        self._segment = {s.id: s for s in city.segments} if city else {}
        self._district = {d.id: d for d in city.districts} if city else {}
        self._polygons = [(self._cell[cid], ring[0]) for cid, ring in (city.cell_polygons.items() if city else [])
                          if cid in self._cell and ring and len(ring[0]) >= 3]
        cells = list(self._cell.values())
        self._centres = (cells, np.array([c.center for c in cells], dtype=np.float64).reshape(-1, 2))

    def cell_at(self, lon: float, lat: float):
        """The grid cell holding a point: by the cell polygons when the city has them, else the nearest centre."""
        for cell, ring in self._polygons:
            if point_in_polygon(lon, lat, ring):
                return cell
        cells, xy = self._centres
        if not cells:
            return None
        kx = math.cos(math.radians(lat))
        d2 = ((xy[:, 0] - lon) * kx) ** 2 + (xy[:, 1] - lat) ** 2
        return cells[int(np.argmin(d2))]

    def enrich(self, labels: dict[str, str], row: dict) -> tuple[float | None, float | None]:
        lon, lat = row.get("lon"), row.get("lat")
        if not self.city:
            return (float(lon), float(lat)) if isinstance(lon, (int, float)) and isinstance(lat, (int, float)) else (None, None)
        key = labels.get("key")
        if key and "segment_id" not in labels and "sensor_id" not in labels:
            # detector output names what it scored only as "key": a segment, a sensor, a cell or a district
            if key in self._segment:
                labels["segment_id"] = key
            elif key in self._sensor:
                labels["sensor_id"] = key
            elif key in self._cell:
                labels.setdefault("cell", key)
            elif key in self._district:
                labels.setdefault("district", key)
        sensor = self._sensor.get(labels.get("sensor_id", "")) if "sensor_id" in labels else None
        seg = self._segment.get(labels.get("segment_id", "")) if "segment_id" in labels else None
        cell_id = labels.get("cell") or (sensor.cell if sensor else None) or (seg.cell if seg else None)
        cell = self._cell.get(cell_id or "")
        if cell is None and "district" not in labels and isinstance(lon, (int, float)) and isinstance(lat, (int, float)):
            cell = self.cell_at(float(lon), float(lat))  # a point only (an incident off the road network)
        if cell is not None:
            labels.setdefault("cell", cell.id)
            labels.setdefault("street", cell.street)
            labels.setdefault("district", cell.district)
        if isinstance(lon, (int, float)) and isinstance(lat, (int, float)):
            return float(lon), float(lat)
        if sensor is not None:
            return sensor.lon, sensor.lat
        if seg is not None and seg.line:
            mid = seg.line[len(seg.line) // 2]
            return float(mid[0]), float(mid[1])
        if cell is not None:
            return float(cell.center[0]), float(cell.center[1])
        d = self._district.get(labels.get("district", ""))
        if d is not None:
            return float(d.center[0]), float(d.center[1])
        return None, None


class RuleEngine:
    """Evaluates rule packs over one window's vital-sign tables; returns candidates (not yet deduplicated).

    Per-rule memory (previous values for ``rate``, last-seen times for ``absence``, recent hits for
    ``multipoint``) is kept across windows and across :meth:`reload` for rules whose id and kind
    are unchanged, and across restarts through :meth:`memory_state` / :meth:`restore_memory`. A rule whose table or columns are missing is skipped and reported in
    :attr:`errors` (rule id → message), never raising in the middle of a window.
    """

    def __init__(self, packs: list[RulePack] | tuple = (), city=None):
        self.locator = Locator(city)
        self.enricher = Enricher(city)
        self.network = RoadNetwork.of_city(city) if city is not None else None
        self.errors: dict[str, str] = {}
        self._memory: dict[str, tuple[str, dict]] = {}
        self.reload(list(packs))

    @classmethod
    def from_path(cls, path: str | os.PathLike | None = None, city=None) -> "RuleEngine":
        return cls(load_rule_packs(path or default_rules_dir()), city=city)

    def reload(self, packs: list[RulePack]) -> None:
        """Swap in new packs (validated first); keeps per-rule memory of unchanged rules."""
        check_packs(packs)
        self.packs = list(packs)
        self.rules: list[Rule] = [r for p in packs for r in p.rules if r.enabled]
        self.inhibit_rules: list[InhibitRule] = [i for p in packs for i in p.inhibit_rules()]
        self.correlate_rules: list[CorrelateRule] = [c for p in packs for c in p.correlate_rules()]
        for c in self.correlate_rules:  # links along the road graph need the city's roads
            c.network = self.network
        self._needs: dict[str, set[str]] = {}
        for r in self.rules:
            for table, cols in rule_columns(r).items():
                self._needs.setdefault(table, set()).update(cols)
        keep = {r.id: r.kind for r in self.rules}
        self._memory = {rid: mem for rid, mem in self._memory.items() if keep.get(rid) == mem[0]}
        self.errors = {}

    # --- memory that outlives a restart (persisted with the alert state by streams.alerts.store) ---------
    def memory_state(self) -> dict[str, bytes]:
        """Per-rule memory (rate: previous values, absence: last-seen keys, multi-point: recent hits) as
        ``{rule id: bytes}`` (msgpack; a rate rule's previous values as Arrow IPC)."""
        out: dict[str, bytes] = {}
        for rid, (kind, mem) in self._memory.items():
            doc: dict = {"kind": kind}
            prev = mem.get("prev")
            if isinstance(prev, pl.DataFrame):
                buf = io.BytesIO()
                prev.write_ipc(buf)
                doc["prev"] = buf.getvalue()
            if "seen" in mem:
                doc["seen"] = [[list(k), r] for k, r in mem["seen"].items()]
            if "hits" in mem:
                doc["hits"] = [[list(k), r] for k, r in mem["hits"].items()]
            out[rid] = _mp_enc.encode(doc)
        return out

    def restore_memory(self, state: dict[str, bytes]) -> list[str]:
        """Load what :meth:`memory_state` saved, for rules still loaded with the same kind; returns the rule
        ids restored. Unreadable entries are skipped (the rule rebuilds its memory, as on a first start)."""
        kinds = {r.id: r.kind for r in self.rules}
        done = []
        for rid, raw in state.items():
            try:
                doc = msgspec.msgpack.decode(raw)
                if kinds.get(rid) != doc.get("kind"):
                    continue
                mem: dict = {}
                if "prev" in doc:
                    mem["prev"] = pl.read_ipc(io.BytesIO(doc["prev"]))
                if "seen" in doc:
                    mem["seen"] = {tuple(k): r for k, r in doc["seen"]}
                if "hits" in doc:
                    mem["hits"] = {tuple(k): r for k, r in doc["hits"]}
            except (msgspec.DecodeError, pl.exceptions.PolarsError, OSError, TypeError, ValueError, AttributeError):
                continue
            self._memory[rid] = (doc["kind"], mem)
            done.append(rid)
        return done

    def _mem(self, rule: Rule) -> dict:
        if rule.id not in self._memory:
            self._memory[rule.id] = (rule.kind, {})
        return self._memory[rule.id][1]

    def evaluate(self, tables: dict[str, pl.DataFrame], now_ms: int) -> list[Candidate]:
        tables = self.enricher.apply(tables, self._needs)
        out: list[Candidate] = []
        by_rule: dict[str, list[Candidate]] = {}
        for rule in self.rules:
            if isinstance(rule, CompositeRule):
                continue
            try:
                got = self._eval(rule, tables, now_ms)
                self.errors.pop(rule.id, None)
            except (pl.exceptions.PolarsError, KeyError, TypeError, ValueError) as exc:
                self.errors[rule.id] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                got = []
            by_rule[rule.id] = got
            out.extend(got)
        for rule in self.rules:
            if isinstance(rule, CompositeRule):
                got = self._composite(rule, by_rule, now_ms)
                by_rule[rule.id] = got
                out.extend(got)
        return out

    # -- kinds --
    def _eval(self, rule: Rule, tables: dict[str, pl.DataFrame], now_ms: int) -> list[Candidate]:
        if isinstance(rule, MultipointRule):
            return self._multipoint(rule, tables, now_ms)
        df = tables.get(rule.table)
        if isinstance(rule, AbsenceRule):
            return self._absence(rule, df, now_ms)
        if df is None or df.height == 0:
            return []
        if rule._where is not None:
            df = df.filter(rule._where)
        if isinstance(rule, RateRule):
            return self._rate(rule, df, now_ms)
        v = rule._value
        trig = _compare(v, rule.op, rule.threshold)
        hold = _compare(v, rule.op, rule.clear) if rule.clear is not None else trig
        rows = df.select(*[c for c in df.columns if c in rule._row_cols], __value=v, __trigger=trig.fill_null(False),
                         __hold=hold.fill_null(False)).filter(pl.col("__hold") | pl.col("__trigger"))
        return [self._candidate(rule, r, r["__value"], now_ms, trigger=r["__trigger"], threshold=rule.threshold)
                for r in rows.iter_rows(named=True)]

    def _rate(self, rule: RateRule, df: pl.DataFrame, now_ms: int) -> list[Candidate]:
        mem = self._mem(rule)
        keys = rule.labels_from
        cur = df.with_columns(__value=rule._value.cast(pl.Float64)).filter(pl.col("__value").is_not_null())
        prev: pl.DataFrame | None = mem.get("prev")
        mem["prev"] = cur.select([*keys, pl.col("__value").alias("__prev"), pl.lit(now_ms).alias("__prev_ms")])
        if prev is None:
            return []
        j = cur.join(prev, on=keys, how="inner").filter(pl.col("__prev_ms") < now_ms)
        dt = (now_ms - pl.col("__prev_ms")) / rule._per_ms
        change = pl.col("__value") - pl.col("__prev")
        if rule.mode == "pct":
            change = pl.when(pl.col("__prev") != 0).then(change / pl.col("__prev").abs() * 100.0).otherwise(None)
        j = j.with_columns(__rate=change / dt).filter(_compare(pl.col("__rate"), rule.op, rule.threshold).fill_null(False))
        return [self._candidate(rule, r, r["__rate"], now_ms, threshold=rule.threshold, extra={"previous": r["__prev"]})
                for r in j.iter_rows(named=True)]

    def _absence(self, rule: AbsenceRule, df: pl.DataFrame | None, now_ms: int) -> list[Candidate]:
        keys = rule.labels_from
        if df is not None and rule._where is not None and df.height:
            df = df.filter(rule._where)
        if rule.last_seen is not None:
            if df is None or df.height == 0:
                return []
            rows = df.with_columns(__age_ms=now_ms - pl.col(rule.last_seen)).filter(
                pl.col("__age_ms").is_null() | (pl.col("__age_ms") > rule._after_ms))
            return [self._candidate(rule, r, (r["__age_ms"] or 0) / 1000.0, now_ms,
                                    threshold=rule._after_ms / 1000.0) for r in rows.iter_rows(named=True)]
        mem = self._mem(rule)
        seen: dict[tuple, dict] = mem.setdefault("seen", {})
        if df is not None and df.height:
            for r in df.select([c for c in keys if c in df.columns] + [c for c in ("lon", "lat") if c in df.columns and c not in keys]).unique().iter_rows(named=True):
                r["__seen_ms"] = now_ms
                seen[tuple(str(r.get(k, "")) for k in keys)] = r
        out = []
        for r in seen.values():
            age = now_ms - r["__seen_ms"]
            if age > rule._after_ms:
                out.append(self._candidate(rule, r, age / 1000.0, now_ms, threshold=rule._after_ms / 1000.0))
        return out

    def _multipoint(self, rule: MultipointRule, tables: dict[str, pl.DataFrame], now_ms: int) -> list[Candidate]:
        mem = self._mem(rule)
        hits: dict[tuple, dict] = mem.setdefault("hits", {})
        for sig in rule.signals:
            df = tables.get(sig.table)
            if df is None or df.height == 0:
                continue
            if sig._where is not None:
                df = df.filter(sig._where)
            rows = df.with_columns(__value=sig._value).filter(_compare(pl.col("__value"), sig.op, sig.threshold).fill_null(False))
            for r in rows.iter_rows(named=True):
                r["__ts"], r["__feed"], r["__source"] = now_ms, sig.feed, f"{sig.feed}:{r[sig.source]}"
                hits[(sig.feed, r[sig.source])] = r
        for k in [k for k, r in hits.items() if now_ms - r["__ts"] > rule._window_ms]:
            del hits[k]
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
            groups = _radius_clusters(pts, rule.radius_m, rule.lon, rule.lat, ident, rule.min_sources)
        out = []
        for members in groups:
            distinct = sorted({m[ident] for m in members})
            if len(distinct) < rule.min_sources:
                continue
            centre = max(members, key=lambda m: m["__ts"])
            row = dict(centre)
            if rule.group_by is not None:
                row[rule.group_by] = centre.get(rule.group_by)
            c = self._candidate(rule, row, float(len(distinct)), now_ms, threshold=float(rule.min_sources),
                                extra={"sources": ",".join(distinct)})
            if rule.group_by is not None:
                c.labels["cell" if rule.group_by == "cell_id" else rule.group_by] = str(centre.get(rule.group_by))
            c.labels["sources"] = ",".join(sorted({m["__source"] for m in members}))
            out.append(c)
        return out

    def _composite(self, rule: CompositeRule, by_rule: dict[str, list[Candidate]], now_ms: int) -> list[Candidate]:
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
            c = self._candidate(rule, row, float(len(members)), now_ms, trigger=trig, threshold=float(len(rule.of)),
                                extra={"rules": ",".join(sorted(members))})
            lons = [m.lon for m in members.values() if m.lon is not None]
            if lons and c.lon is None:
                first = next(m for m in members.values() if m.lon is not None)
                c.lon, c.lat = first.lon, first.lat
            out.append(c)
        return out

    def _candidate(self, rule: Rule, row: dict, value: object, now_ms: int, trigger: bool = True,
                   threshold: object = None, extra: dict | None = None) -> Candidate:
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
        lon, lat = self.locator.enrich(labels, row)
        val = _num(value)
        evidence: dict[str, float | str] = {"value": round(val, 4)}
        if isinstance(threshold, (int, float)):
            evidence["threshold"] = threshold
        for col in rule.evidence:
            v = row.get(col)
            if v is not None:
                evidence[col] = v if isinstance(v, str) else round(_num(v), 4)
        if extra:
            evidence.update({k: (v if isinstance(v, str) else round(_num(v), 4)) for k, v in extra.items()})
        fields = _Fields(row)
        fields.update(labels)
        fields.update(value=val, threshold=threshold)
        if rule.summary:
            try:  # str.format_map is C; the forgiving Formatter only for odd rows (None with a format spec…)
                summary = rule.summary.format_map(fields)
            except (ValueError, TypeError, KeyError, IndexError, AttributeError):
                summary = _FMT.format(rule.summary, **fields)
        else:
            summary = f"{rule.id}: {val:g}"
        if len(summary) > MAX_SUMMARY_CHARS:  # long column values (a free-text field) stay bounded too
            summary = summary[: MAX_SUMMARY_CHARS - 1] + "…"
        return Candidate(rule_id=rule.id, kind=rule._kind, severity=level, labels=labels, value=val, ts_ms=now_ms,
                         trigger=bool(trigger), summary=summary, evidence=evidence, for_ms=rule._for_ms,
                         keep_firing_for_ms=rule._keep_ms, lon=lon, lat=lat, digest_ms=rule._digest_ms)


def _radius_clusters(pts: list[dict], radius_m: float, lon: str, lat: str, ident: str, need: int) -> list[list[dict]]:
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
