from hypothesis import given, strategies as st

from brain.alerts.fingerprint import dedup, fingerprint
from tests.alerts.helpers import cand

names = st.text("abcdefgh_", min_size=1, max_size=6)
labelsets = st.dictionaries(names, st.text(max_size=5), max_size=5)


@given(labelsets)
def test_fingerprint_ignores_label_order(labels):
    items = list(labels.items())
    assert fingerprint("r", dict(items)) == fingerprint("r", dict(reversed(items)))


@given(labelsets, labelsets)
def test_fingerprint_differs_when_identifying_labels_differ(a, b):
    same = {k: v for k, v in a.items() if k not in ("severity", "summary", "sources")} == \
           {k: v for k, v in b.items() if k not in ("severity", "summary", "sources")}
    assert (fingerprint("r", a) == fingerprint("r", b)) == same


def test_fingerprint_depends_on_rule_and_not_on_sources():
    assert fingerprint("a", {"x": "1"}) != fingerprint("b", {"x": "1"})
    assert fingerprint("a", {"x": "1", "sources": "s1"}) == fingerprint("a", {"x": "1", "sources": "s1,s2"})
    # "a=b" + "c" must not collide with "a" + "b=c"
    assert fingerprint("r", {"a": "b\x00c"}) != fingerprint("r", {"a": "b", "c": ""})


def test_dedup_keeps_most_severe_then_triggered():
    weak = cand(sev=3, trigger=False, seg="S1")
    strong = cand(sev=2, trigger=False, seg="S1")
    trig = cand(sev=3, trigger=True, seg="S1")
    other = cand(sev=4, seg="S2")
    out = dedup([weak, strong, trig, other])
    assert len(out) == 2
    by = {c.labels["seg"]: c for c in out}
    assert by["S1"] is strong
    out2 = dedup([cand(sev=3, trigger=False, seg="S1"), trig])
    assert out2[0] is trig
