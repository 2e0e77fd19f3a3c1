"""The rule engine: packs loaded and compiled, per-rule memory across windows, reloads and restarts.

Example:
    >>> import polars as pl
    >>> from brain.alerts.rules.packs import parse_rule_pack
    >>> pack = parse_rule_pack('''
    ... pack: demo
    ... rules:
    ...   - {id: fall, kind: rate, table: seg, value: speed, op: "<=", threshold: -10, per: 5m, labels_from: [segment_id],
    ...      severity: yellow}
    ... ''')
    >>> eng = RuleEngine([pack])
    >>> eng.evaluate({"seg": pl.DataFrame({"segment_id": ["S1"], "speed": [50.0]})}, 0)
    []
    >>> [(c.value, c.evidence["previous"]) for c in eng.evaluate({"seg": pl.DataFrame({"segment_id": ["S1"], "speed": [20.0]})}, 300_000)]
    [(-30.0, 50.0)]
    >>> sorted(RuleEngine([pack]).restore_memory(eng.memory_state()))
    ['fall']
"""
from __future__ import annotations

import io
import os

import msgspec
import polars as pl

from brain.alerts.correlation import CorrelateRule
from brain.alerts.enrich import Enricher
from brain.alerts.inhibition import InhibitRule
from brain.alerts.model import Candidate
from brain.alerts.roadgraph import RoadNetwork
from brain.alerts.rules.compiled import RULE_ERRORS, CompiledRules, error_text
from brain.alerts.rules.kinds import composite
from brain.alerts.rules.locate import Locator
from brain.alerts.rules.packs import check_packs, default_rules_dir, load_rule_packs, rule_columns
from brain.alerts.rules.reference import evaluate_rule_ref
from brain.alerts.rules.schema import CompositeRule, Rule, RulePack
from brain.alerts.supplyzones import SupplyZones

_MSGPACK = msgspec.msgpack.Encoder()


class RuleEngine:
    """Evaluates rule packs over one window's vital-sign tables; returns candidates (not yet deduplicated).

    Per-rule memory (previous values for ``rate``, last-seen times for ``absence``, recent hits for
    ``multipoint``) is kept across windows and across :meth:`reload` for rules whose id and kind
    are unchanged, and across restarts through :meth:`memory_state` / :meth:`restore_memory`. A rule whose table or columns are missing is skipped and reported in
    :attr:`errors` (rule id → message), never raising in the middle of a window.

    Rules are compiled on every :meth:`reload` into one pass per table (:class:`CompiledRules`,
    :attr:`plan`); :class:`ReferenceRuleEngine` is the previous evaluator (a query per rule, a dict per
    row), kept as its twin for the differential tests and the benchmark.

    >>> import polars as pl
    >>> eng = RuleEngine.from_path()
    >>> seg = pl.DataFrame({"segment_id": ["S1", "S2"], "district": ["D1", "D1"], "tti": [2.6, 1.1],
    ...                     "tpi": [5.0, 1.0], "speed_kmh": [14.0, 50.0]})
    >>> [(c.rule_id, c.labels["segment_id"], c.summary) for c in eng.evaluate({"segment_traffic": seg}, 0)]
    [('segment_congested', 'S1', 'Segment S1 congested: TTI 2.60 (>= 2.0), speed 14 km/h')]
    >>> ReferenceRuleEngine.from_path().evaluate({"segment_traffic": seg}, 0) == eng.evaluate({"segment_traffic": seg}, 0)
    True
    """

    def __init__(self, packs: list[RulePack] | tuple = (), city=None):
        self.locator = Locator(city)
        self.enricher = Enricher(city)
        self.network = RoadNetwork.of_city(city) if city is not None else None
        self.zones = SupplyZones.of_city(city) if city is not None else None
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
        for c in self.correlate_rules:  # links along the road graph need the city's roads, zones its meters
            c.network = self.network
            c.zones = self.zones
        self._needs: dict[str, set[str]] = {}
        for r in self.rules:
            for table, cols in rule_columns(r).items():
                self._needs.setdefault(table, set()).update(cols)
        self.plan = CompiledRules(self.rules)
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
            if "rise" in mem:  # rise signals: each source's recent values
                doc["rise"] = mem["rise"]
            out[rid] = _MSGPACK.encode(doc)
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
                if "rise" in doc:
                    mem["rise"] = doc["rise"]
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
        """Candidates of every enabled rule over one window's tables (rule order, composites last)."""
        tables = self.enricher.apply(tables, self._needs)
        by_rule = self._evaluate_rules(tables, now_ms)
        out = [c for cs in by_rule.values() for c in cs]
        for rule in self.rules:
            if isinstance(rule, CompositeRule):
                got = composite(rule, by_rule, now_ms, self.locator)
                by_rule[rule.id] = got
                out.extend(got)
        return out

    def _evaluate_rules(self, tables: dict[str, pl.DataFrame], now_ms: int) -> dict[str, list[Candidate]]:
        return self.plan.evaluate(tables, now_ms, self._mem, self.locator, self.errors)


class ReferenceRuleEngine(RuleEngine):
    """The previous evaluator: each rule queries its table, each matched row becomes a dict, then a candidate.

    Same memory, reload and restart behaviour as :class:`RuleEngine` (only the evaluation differs);
    kept as the twin the compiled plan is tested and benchmarked against.

    >>> import polars as pl
    >>> eng = ReferenceRuleEngine.from_path()
    >>> [c.rule_id for c in eng.evaluate({"air_station": pl.DataFrame({"sensor_id": ["A1"], "aqi": [180.0]})}, 0)]
    ['aqi_light', 'aqi_moderate']
    """

    def _evaluate_rules(self, tables: dict[str, pl.DataFrame], now_ms: int) -> dict[str, list[Candidate]]:
        by_rule: dict[str, list[Candidate]] = {}
        for rule in self.rules:
            if isinstance(rule, CompositeRule):
                continue
            try:
                got = evaluate_rule_ref(rule, tables, now_ms, self._mem(rule), self.locator)
                self.errors.pop(rule.id, None)
            except RULE_ERRORS as exc:
                self.errors[rule.id] = error_text(exc)
                got = []
            by_rule[rule.id] = got
        return by_rule
