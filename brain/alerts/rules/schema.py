"""The typed schema of rule packs: one struct per rule kind, pack defaults, inhibit and correlate links.

Each rule kind validates itself when a pack is converted (``__post_init__``): ids, operators and
hysteresis direction, durations, summary templates (see :mod:`brain.alerts.rules.templates`), and
the SQL expressions of ``value`` and ``where``, parsed once into polars expressions (``_value``,
``_where``) that the evaluator reuses every window. Parsing YAML into these structs is
:mod:`brain.alerts.rules.packs`.

Example:
    >>> r = msgspec.convert({"id": "jam", "kind": "threshold", "table": "segment_traffic", "value": "tti",
    ...                      "op": ">=", "threshold": 2.0, "clear": 1.7, "severity": "yellow", "for": "10m"}, Rule)
    >>> (r.kind, r._level, r._for_ms, r._value.meta.root_names())
    ('threshold', 3, 600000, ['tti'])
    >>> msgspec.convert({"id": "jam", "kind": "threshold", "table": "t", "value": "tti", "op": ">=",
    ...                  "threshold": 2.0, "clear": 2.5, "severity": "yellow"}, Rule)
    Traceback (most recent call last):
    ...
    msgspec.ValidationError: rule jam: clear 2.5 must not be above threshold 2.0 for op '>='
"""
from __future__ import annotations

from typing import Literal, Union

import msgspec
import polars as pl

from brain.alerts.correlation import CorrelateRule
from brain.alerts.inhibition import InhibitRule
from brain.alerts.model import parse_duration_ms, parse_severity
from brain.alerts.rules.templates import Template, check_template_bounds, template_fields

Op = Literal[">", ">=", "<", "<=", "==", "!="]
Duration = Union[str, int, float]


class RuleError(ValueError):
    """A rule pack that cannot be used; the message names the file and the rule."""


LOCATION_COLS = ("lon", "lat", "sensor_id", "segment_id", "cell_id", "cell", "district", "street")


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
        names = template_fields(self.summary)
        for name in names:
            if not name.isidentifier():
                raise ValueError(f"summary placeholder {{{name}}} must be a column name")
        check_template_bounds(self.summary)
        self._template = Template(self.summary)  # compiled once; rendered per candidate row
        # the only row columns a candidate needs (so wide tables are not turned into wide dicts)
        self._row_cols = {*names, *self.labels_from, *self.evidence, *LOCATION_COLS, self.severity_from or ""}

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
    """One feed's condition in a multi-point rule; ``source`` names the column identifying the terminal.

    With ``rise_over`` the condition is on the rise of ``value`` at that source: its value now minus
    its last value at least ``rise_over`` ago (at most twice that; a source with less history says
    nothing yet) — a concentration climbing at several stations is an episode before any level is.
    ``at_least`` also asks the value itself to be at least that (a rise in clean air is weather).
    The history is kept for the rows ``where`` selects.
    """

    table: str
    value: str
    op: Op
    threshold: Union[float, str]
    where: str | None = None
    source: str = "sensor_id"
    feed: str = ""
    rise_over: Duration | None = None
    at_least: float | None = None

    def __post_init__(self) -> None:
        _check_op(self.op, self.threshold, None, f"signal on {self.table}")
        self._value = _expr(self.value, "value")
        self._where = _expr(self.where, "where") if self.where else None
        if not self.feed:
            self.feed = self.table
        self._rise_ms = parse_duration_ms(self.rise_over) if self.rise_over is not None else 0
        if self.rise_over is not None and self._rise_ms <= 0:
            raise ValueError(f"signal on {self.table}: rise_over must be positive")
        if self._rise_ms and not isinstance(self.threshold, (int, float)):
            raise ValueError(f"signal on {self.table}: a rise_over signal needs a numeric threshold (the rise)")
        if self.at_least is not None and not self._rise_ms:
            raise ValueError(f"signal on {self.table}: at_least goes with rise_over (use where for a plain level)")


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
    the ``equal`` labels (and lies within ``within_m`` metres, when set; or whose sensors lie in its metered
    supply zone, with ``same_zone``)."""

    source: list[str]
    target: list[str]
    equal: list[str] = []
    within_m: float | None = None
    upstream_m: float | None = None  # the target's segment feeds the source's within this many metres of road
    same_zone: bool = False  # the target's sensors lie in the source's metered supply zone (brain.alerts.supplyzones)


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
                + [CorrelateRule(c.source, c.target, c.equal, c.within_m, c.upstream_m, same_zone=c.same_zone)
                   for c in self.correlate])
