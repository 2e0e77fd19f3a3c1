from brain.alerts.state import AlertState


def test_notification_log_rejects_repeats_and_forgets_old_keys():
    st = AlertState()
    st.log_ms = 1000
    assert st.record_sent("a", 0) and not st.record_sent("a", 5)
    for i in range(1, 10_000):
        st.record_sent(f"k{i}", 10_000 + i)
    # the 10 000th insert pruned everything older than 1 s before it: "a" (t=0) is forgotten, recent keys kept
    assert "a" not in st.sent_keys and "k9999" in st.sent_keys
    assert st.record_sent("a", 20_000)


def test_take_changes_hands_over_and_resets():
    st = AlertState()
    st.dirty.add("f")
    st.removed.add("g")
    dirty, removed, audit = st.take_changes()
    assert (dirty, removed, audit) == ({"f"}, {"g"}, [])
    assert st.take_changes() == (set(), set(), [])
