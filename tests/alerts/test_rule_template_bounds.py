"""Rules are data: a summary template cannot make an alert unbounded (``{x:>300000000}`` once grew a
run to 10 GB), and ``citybrain rules check`` says so with the file and rule."""
from __future__ import annotations

import subprocess
import sys

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.alerts.rules import MAX_FIELD_WIDTH, MAX_SUMMARY_CHARS, RuleEngine, parse_rule_pack

PACK = """
pack: p
rules:
  - id: wide
    kind: threshold
    table: segment_traffic
    value: tti
    op: ">="
    threshold: 0
    severity: yellow
    labels_from: [segment_id]
    summary: {summary!r}
"""


def _pack(summary: str):
    return parse_rule_pack(PACK.format(summary=summary).replace("summary: '", 'summary: "').replace("'\n", '"\n'))


@pytest.mark.parametrize("summary", ["{segment_id:>300000000}", "{value:.999999f}", "{segment_id:{value}}", "{value:0300000000d}",
                                     "x" * 3000])
def test_unbounded_templates_are_refused(summary):
    with pytest.raises(ValueError) as err:
        _pack(summary)
    assert "summary" in str(err.value)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10**9), st.sampled_from(["<", ">", "^", ""]), st.sampled_from(["", "s"]))
def test_a_template_is_accepted_only_when_its_width_is_bounded(width, align, kind):
    summary = f"{{segment_id:{align}{width}{kind}}}"
    if width > MAX_FIELD_WIDTH:
        with pytest.raises(ValueError):
            _pack(summary)
        return
    engine = RuleEngine([_pack(summary)])
    out = engine.evaluate({"segment_traffic": pl.DataFrame({"segment_id": ["S1"], "tti": [2.0]})}, 0)
    assert len(out[0].summary) <= max(width, 2)


def test_long_column_values_are_cut():
    engine = RuleEngine([_pack("{segment_id}")])
    out = engine.evaluate({"segment_traffic": pl.DataFrame({"segment_id": ["S" * 100_000], "tti": [2.0]})}, 0)
    assert len(out[0].summary) == MAX_SUMMARY_CHARS


def test_rules_check_reports_file_rule_and_bound(tmp_path):
    (tmp_path / "evil.yaml").write_text(PACK.format(summary="{segment_id:>300000000}"))
    proc = subprocess.run([sys.executable, "-m", "citybrain", "rules", "check", str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert "evil.yaml" in proc.stdout + proc.stderr and "300000000 is more than 200" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
