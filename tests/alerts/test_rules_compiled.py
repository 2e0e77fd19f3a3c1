"""The compiled rule plan against the previous evaluator (``ReferenceRuleEngine``), candidate for candidate.

1. The shipped packs (rules/*.yaml) with the demo city over simulated spans (random seeds, the
   scenarios and sensor faults at random times): every window's candidates identical, in order,
   and the same rule errors.
2. Hypothesis: generated rule packs (every row-level kind, ``where`` clauses, hysteresis, templates
   with odd specs and missing fields, labels and evidence from columns with nulls, NaN/inf values,
   aggregates in values) over generated tables, several windows in a row (rate and absence memory).
3. Bulk rounding and the positional Candidate against their one-by-one twins.
"""
from __future__ import annotations

import math
import os
import random

import msgspec
import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brain.alerts.model import Candidate
from brain.alerts.rules import ReferenceRuleEngine, RuleEngine, parse_rule_pack
from brain.alerts.rules.candidates import round4
from brain.city import demo_city_path, load_city

H = 3_600_000


def _seed() -> int:
    env = os.environ.get("CITYBRAIN_TEST_SEED")
    return int(env) if env else random.SystemRandom().randrange(1, 1_000_000)


def _same(a: list[Candidate], b: list[Candidate], where: str) -> None:
    assert len(a) == len(b), f"{where}: {len(a)} compiled candidates, {len(b)} from the reference"
    for x, y in zip(a, b):
        assert msgspec.structs.asdict(x) == msgspec.structs.asdict(y), f"{where}: {x} != {y}"
        assert list(x.labels) == list(y.labels), f"{where}: label order {list(x.labels)} != {list(y.labels)}"


@pytest.fixture(scope="module")
def city():
    return load_city(demo_city_path())


@pytest.mark.parametrize("run", [0, 1])
def test_shipped_rules_agree_over_a_simulated_span(city, run):
    from streams.alerts.service import window_tables
    from streams.anomaly_operator import maybe_anomaly_operator
    from streams.fault_operator import fault_operator
    from streams.sim import Simulator
    from streams.sim.scenarios import Scenario
    from brain.pipeline import CityPipeline, PipelineConfig

    seed = _seed()
    rng = np.random.default_rng(seed)
    start = Simulator(city, seed=seed, scenarios=[], faults=[]).start_ms + int(rng.integers(0, 18)) * H
    hours = 4.0
    at = lambda: start + int(rng.uniform(0.1, hours - 0.5) * H)  # noqa: E731
    events = [Scenario(type="accident", start_ms=at(), duration_s=2400.0, scenario_id="acc"),
              Scenario(type="pollution_episode", start_ms=start + int(0.2 * H), duration_s=3 * 3600.0, scenario_id="pol"),
              Scenario(type="water_main_burst", start_ms=at(), duration_s=5400.0, scenario_id="burst")]
    sensors = [s.id for s in city.sensors if s.type in ("loop", "air", "noise", "utility_water")]
    faults = [Scenario(type=t, start_ms=at(), duration_s=7200.0, target=str(rng.choice(sensors)), scenario_id=t)
              for t in ("sensor_stuck", "sensor_drift", "sensor_dropout")]
    sim = Simulator(city, seed=seed, start_ms=start, scenarios=events, faults=faults)
    cfg = PipelineConfig()
    ops = [op for op in (maybe_anomaly_operator(city, cfg), fault_operator(city)) if op is not None]
    pipe = CityPipeline(city, cfg, window_operators=ops)
    compiled, reference = RuleEngine.from_path(city=city), ReferenceRuleEngine.from_path(city=city)
    windows = total = 0
    kinds: set[str] = set()
    for batch in sim.batches(start + int(hours * H), batch_s=300):
        res = pipe.ingest_frames(batch.frames)
        for op in ops:
            if hasattr(op, "observe_rejected"):
                op.observe_rejected(res.dead)
        res.windows.extend(pipe.advance_to(batch.end_ms).windows)
        for w in res.windows:
            tables = window_tables(w)
            a = compiled.evaluate(tables, w.window_end_ms)
            b = reference.evaluate(tables, w.window_end_ms)
            _same(a, b, f"seed {seed}, window {w.window_end_ms}")
            assert compiled.errors == reference.errors, f"seed {seed}"
            windows += 1
            total += len(a)
            kinds.update(c.kind for c in a)
    assert windows >= 40 and total > 100, (seed, windows, total)
    # the span exercises most kinds (which ones depends on the seed: an absence needs 30 quiet minutes,
    # anomaly scores a warmed-up detector)
    assert "threshold" in kinds and len(kinds) >= 4, (seed, kinds)


# --- generated packs and tables --------------------------------------------------------------------

_SUMMARIES = ["{name} {value:.2f} over {threshold}", "{value:+.0%} at {cell} ({street}) {missing}",
              "{x:d} / {y:.1f} / {name!r:>12}", "{{literal}} {value:g} {district}", "", "{value:>8.3e} {flag}",
              "{cell_id}:{name}:{x}"]
_WHERES = [None, "x > 0", "y IS NOT NULL AND y < 50", "name != 'b'", "flag", "x"]
_VALUES = ["y", "x * 1.5", "abs(y - 20)", "y - avg(y)", "CASE WHEN flag THEN y ELSE 0 END", "x"]


@st.composite
def _rule(draw, i: int) -> dict:
    kind = draw(st.sampled_from(["threshold", "threshold", "anomaly", "rate", "absence", "absence_ls"]))
    r: dict = {"id": f"r{i}", "severity": draw(st.sampled_from(["red", "orange", "yellow", "blue"])),
               "labels": draw(st.sampled_from([{}, {"category": "traffic"}, {"cell": "static"}])),
               "labels_from": draw(st.sampled_from([["name"], ["name", "cell_id"], ["name", "district", "x"], ["key"]])),
               "summary": draw(st.sampled_from(_SUMMARIES)),
               "evidence": draw(st.sampled_from([[], ["y"], ["x", "name", "z"]])),
               "table": draw(st.sampled_from(["t1", "t2"]))}
    where = draw(st.sampled_from(_WHERES))
    if where:
        r["where"] = where
    if draw(st.booleans()):
        r["severity_from"] = "x"
    if kind in ("threshold", "anomaly"):
        op = draw(st.sampled_from([">", ">=", "<", "<="]))
        th = draw(st.sampled_from([0, 5, 20.5, 40]))
        r.update(kind=kind, value=draw(st.sampled_from(_VALUES)), op=op, threshold=th)
        if draw(st.booleans()):
            r["clear"] = th - 3 if op.startswith(">") else th + 3
    elif kind == "rate":
        r.update(kind="rate", value=draw(st.sampled_from(["y", "x"])), op=draw(st.sampled_from([">", "<="])),
                 threshold=draw(st.sampled_from([0, 2.0, -5])), per="5m", mode=draw(st.sampled_from(["abs", "pct"])))
    elif kind == "absence":
        r.update(kind="absence", after="9m")
    else:
        r.update(kind="absence", after="9m", last_seen="seen_ms")
    return r


@st.composite
def _table(draw, now_ms: int) -> pl.DataFrame:
    n = draw(st.integers(0, 12))
    fl = st.one_of(st.none(), st.floats(-50, 80), st.sampled_from([0.5, 20.5, 1e-5, math.nan, math.inf, -math.inf]))
    names = [draw(st.sampled_from(["a", "b", "c", "d", "e", None])) for _ in range(n)]
    return pl.DataFrame({
        "name": names, "key": [f"S{k}" for k in range(n)],
        "cell_id": [draw(st.sampled_from(["C1", "C2", None])) for _ in range(n)],
        "district": [draw(st.sampled_from(["D1", None])) for _ in range(n)],
        "x": [draw(st.one_of(st.none(), st.integers(-3, 6))) for _ in range(n)],
        "y": [draw(fl) for _ in range(n)], "z": [draw(st.sampled_from(["u", None])) for _ in range(n)],
        "flag": [draw(st.booleans()) for _ in range(n)],
        "seen_ms": [draw(st.one_of(st.none(), st.integers(now_ms - 3_600_000, now_ms))) for _ in range(n)],
    }, schema={"name": pl.String, "key": pl.String, "cell_id": pl.String, "district": pl.String, "x": pl.Int64,
               "y": pl.Float64, "z": pl.String, "flag": pl.Boolean, "seen_ms": pl.Int64})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_generated_rules_and_tables_agree(data):
    n_rules = data.draw(st.integers(1, 6))
    rules = [data.draw(_rule(i)) for i in range(n_rules)]
    pack = parse_rule_pack(msgspec.json.encode({"pack": "gen", "rules": rules}).decode(), "gen.yaml")
    compiled, reference = RuleEngine([pack]), ReferenceRuleEngine([pack])
    for w in range(1, 4):
        now = w * 300_000
        tables = {t: data.draw(_table(now)) for t in ("t1", "t2") if data.draw(st.integers(0, 5))}
        a, b = compiled.evaluate(tables, now), reference.evaluate(tables, now)
        _same(a, b, f"window {w}")
        assert compiled.errors == reference.errors


def test_generated_rules_with_the_city_agree(city):
    """Labels and points from the city model (memoised in the compiled plan) on real ids, with nulls."""
    pack = parse_rule_pack('''
pack: c
rules:
  - {id: s, kind: threshold, table: t, value: v, op: ">", threshold: 0, severity: yellow, labels_from: [sensor_id],
     summary: "{sensor_id} in {district}/{street}/{cell}: {value:.1f}"}
  - {id: k, kind: anomaly, table: anomaly, threshold: 0.5, severity: blue, summary: "{key} {segment_id} {cell} {value:.2f}"}
  - {id: p, kind: threshold, table: inc, value: v, op: ">", threshold: 0, severity: red, labels_from: [incident_id]}
''')
    rng = random.Random(_seed())
    ids = [s.id for s in city.sensors] + [g.id for g in city.segments] + [c.id for c in city.cells] + ["nope", None]
    compiled, reference = RuleEngine([pack], city=city), ReferenceRuleEngine([pack], city=city)
    for w in range(5):
        n = 300
        t = pl.DataFrame({"sensor_id": [rng.choice(ids) for _ in range(n)], "v": [rng.uniform(-1, 3) for _ in range(n)]})
        an = pl.DataFrame({"key": [rng.choice(ids) for _ in range(n)], "score": [rng.random() for _ in range(n)]})
        inc = pl.DataFrame({"incident_id": [f"I{k}" for k in range(n)], "v": [1.0] * n,
                            "lon": [rng.choice([None, 120.0 + rng.random() / 10]) for _ in range(n)],
                            "lat": [30.2 + rng.random() / 10 for _ in range(n)]})
        tables = {"t": t, "anomaly": an, "inc": inc}
        _same(compiled.evaluate(tables, w * 300_000), reference.evaluate(tables, w * 300_000), f"window {w}")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.floats(-1e15, 1e15), st.integers(-10**9, 10**9).map(lambda k: k / 1e4 + 5e-5),
                          st.integers(-10**6, 10**6).map(lambda k: (k + 0.5) / 1e4)), max_size=50))
def test_bulk_rounding_is_pythons_round(xs):
    got = round4(np.array(xs, dtype=np.float64))
    want = [round(float(x), 4) for x in xs]
    assert [repr(g) for g in got] == [repr(w) for w in want]
    assert all(math.isfinite(g) for g in got)


def test_a_positional_placeholder_is_refused_when_the_pack_loads():
    from brain.alerts.rules import RuleError

    with pytest.raises(RuleError, match=r"summary placeholder \{\} must be a column name"):
        parse_rule_pack("pack: p\nrules:\n  - {id: a, kind: threshold, table: t, value: v, op: '>', threshold: 1,"
                        " severity: red, summary: 'x {} y'}", "p.yaml")


def test_candidate_fields_in_the_order_the_compiled_builder_passes_them():
    assert Candidate.__struct_fields__ == ("rule_id", "kind", "severity", "labels", "value", "ts_ms", "trigger", "summary",
                                           "evidence", "for_ms", "keep_firing_for_ms", "lon", "lat", "fingerprint",
                                           "digest_ms")


def test_the_plan_groups_rules_by_table_and_filter():
    eng = RuleEngine.from_path()
    groups = eng.plan.groups
    assert len(groups[("air_station", None)]) >= 4 and len(groups[("noise_sensor", None)]) >= 3
    assert ("sensor_last_seen", "type IN ('air', 'water_quality', 'weather') AND last_seen_ms IS NOT NULL") in groups
