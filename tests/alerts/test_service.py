"""AlertService: rule files reloaded while running without losing alert state; bad edits keep the old rules."""
import asyncio
import os

import pytest

from brain.alerts.rules import RuleError
from streams.alerts.service import AlertService
from tests.alerts.svc_helpers import M, RULES, seg_table, write_rules


def touch_later(path, text):
    st = path.stat()
    path.write_text(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_rules_reload_keeps_firing_alerts_and_rejects_bad_edits(redis_url, tmp_path):
    rules = write_rules(tmp_path)
    f = rules / "test.yaml"

    async def run():
        svc = await AlertService.start(redis_url, rules_path=rules, deliver=False)
        await svc.on_window(seg_table({"S1": 2.5}), 0)
        (a,) = [x for x in svc.pipeline.state.alerts.values()]
        assert a.status == "firing"
        # raise the threshold to 3.0 but keep the clear level: S1 (2.5) stays firing by hysteresis
        touch_later(f, RULES.replace("threshold: 2.0", "threshold: 3.0"))
        notes = await svc.on_window(seg_table({"S1": 2.5, "S2": 2.6}), M)
        assert notes == [] and svc.pipeline.state.alerts[a.fingerprint].status == "firing"
        assert [x.labels["segment_id"] for x in svc.pipeline.state.alerts.values()] == ["S1"]  # S2 < 3.0 now
        # a broken edit: the running rules stay, the error is reported and audited
        touch_later(f, RULES.replace('op: ">="', 'op: "=>"'))
        await svc.on_window(seg_table({"S1": 2.5, "S2": 3.5}), 2 * M)
        assert "op" in svc.reload_error
        assert {x.labels["segment_id"] for x in svc.pipeline.state.alerts.values()} == {"S1", "S2"}
        with pytest.raises(RuleError):
            await svc.reload_rules()
        audit = await svc.store.audit(50)
        assert [e["new"] for e in audit if e["action"] == "rules"] == ["reloaded", "reload-failed", "reload-failed"]
        await svc.close()

    asyncio.run(run())


def test_feed_and_view_rows_order_by_severity(redis_url, tmp_path):
    rules = write_rules(tmp_path, RULES + """
  - id: jam_red
    kind: threshold
    table: segment_traffic
    value: tti
    op: ">="
    threshold: 4.0
    severity: red
    labels: {category: traffic}
    labels_from: [segment_id, district]
""")

    async def run():
        svc = await AlertService.start(redis_url, rules_path=rules, deliver=False)
        await svc.on_window(seg_table({"S1": 2.5, "S2": 4.5}), 0)
        rows = svc.firing_for_view()
        await svc.close()
        return rows

    rows = asyncio.run(run())
    assert [r["severity"] for r in rows] == ["red", "yellow", "yellow"]
    assert rows[0]["state"].endswith("↑district")  # red alerts start at the district tier


def test_run_settings_give_the_window_length_so_a_first_page_does_not_wait_a_whole_window(redis_url, tmp_path):
    from types import SimpleNamespace

    from brain.alerts.routing import Subscription

    rules = write_rules(tmp_path)
    sub = Subscription.from_dict({"id": "police", "department": "traffic police", "group_wait": "30s",
                                  "channel": {"type": "log"}})

    async def first_page(settings):
        svc = await AlertService.from_settings(None, settings, fresh=True, subscriptions=[sub], deliver=False)
        at = []
        for i in range(3):
            at += [i * 5 for n in await svc.on_window(seg_table({"S1": 2.5}), i * 5 * M) if n.status == "firing"]
        await svc.close()
        return at

    base = {"out_dir": str(tmp_path / "out"), "redis_url": redis_url, "rules_dir": str(rules)}
    assert asyncio.run(first_page(SimpleNamespace(**base, window_s=300))) == [0]
    assert asyncio.run(first_page(SimpleNamespace(**base, window_s=0))) == [5]  # no window length known: waits
