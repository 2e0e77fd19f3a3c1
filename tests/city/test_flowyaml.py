"""The fast city.yaml reader gives exactly PyYAML's data whenever it answers, and steps aside otherwise."""
from __future__ import annotations

import json

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.city import flowyaml
from brain.city.loader import load_city

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
KEYS = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**15, 10**15),
                    st.floats(allow_nan=True, allow_infinity=True, width=64), st.text(max_size=10))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
                      max_leaves=12)


def _yaml(text: str):
    try:
        return ("ok", yaml.load(text, Loader=LOADER))  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        return ("error", None)


def _same(a, b) -> bool:
    # NaN != NaN: compare through a canonical JSON text.
    return json.dumps(a, sort_keys=True, default=repr) == json.dumps(b, sort_keys=True, default=repr)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS, st.one_of(values, st.lists(values, max_size=4).map(lambda v: ("items", v))), min_size=1, max_size=5),
       st.sampled_from([(", ", ": "), (",", ":")]), st.booleans())
def test_json_flow_documents_read_as_yaml_reads_them(doc, separators, ascii_only):
    lines = []
    for key, value in doc.items():
        if isinstance(value, tuple):
            lines.append(f"{key}:  # {len(value[1])} items")
            lines.extend("- " + json.dumps(v, separators=separators, ensure_ascii=ascii_only) for v in value[1])
        else:
            lines.append(f"{key}: " + json.dumps(value, separators=separators, ensure_ascii=ascii_only))
    text = "\n".join(lines) + "\n"
    fast = flowyaml.parse(text)
    if fast is flowyaml.OUTSIDE:
        return  # stepped aside: YAML decides
    status, slow = _yaml(text)
    assert status == "ok", f"flowyaml accepted what YAML refuses:\n{text}"
    assert _same(fast, slow), (text, fast, slow)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.text(alphabet="-: #{}[]\"',.0123456789eEaknx_\\u\t", max_size=20),
                          st.sampled_from(["k:", "- 1", "- {\"a\": 1}", "k: 1", "  - 2", "---", "k: ~", "k: 1e5", "k: 0x10"])),
                max_size=6))
def test_any_text_is_read_the_same_or_left_to_yaml(lines):
    text = "\n".join(lines)
    fast = flowyaml.parse(text)
    if fast is flowyaml.OUTSIDE:
        return
    status, slow = _yaml(text)
    assert status == "ok" and _same(fast, slow), (text, fast, slow)


def test_the_demo_city_block_yaml_is_left_to_yaml(city):
    from brain.city import demo_city_path

    text = (demo_city_path() / "city.yaml").read_text(encoding="utf-8")
    assert flowyaml.parse(text) is flowyaml.OUTSIDE
    assert load_city(demo_city_path()).sensors == city.sensors
