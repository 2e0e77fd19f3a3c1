"""Acknowledge and take back through API v1, applied by the real alert service; both under the tokens' identities."""
import time

import httpx
import pytest

from brain.alerts.lifecycle import Lifecycle
from brain.alerts.model import Alert
from tests.alerts.svc_helpers import seg_table


def wait_for(pred, timeout_s=10.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def test_ack_then_unack_are_applied_by_the_engine_under_each_token(live_setup):
    cockpit, engine, toks = live_setup
    engine.call(engine.svc.on_window(seg_table({"S3": 2.4}), int(time.time() * 1000)))
    fp = next(iter(engine.svc.pipeline.state.alerts))
    alerts = engine.svc.pipeline.state.alerts

    def post(who, verb):
        return httpx.post(f"{cockpit.url}/api/v1/alerts/{fp}/{verb}", headers={"Authorization": f"Bearer {toks[who]}"})

    def actor(who):
        return httpx.get(f"{cockpit.url}/api/v1/whoami", headers={"Authorization": f"Bearer {toks[who]}"}).json()["actor"]

    assert post("operator", "unack").status_code == 409  # firing: nothing to take back
    assert post("operator", "ack").status_code == 202
    assert wait_for(lambda: alerts[fp].status == "acknowledged")
    assert alerts[fp].acked_by == actor("operator")
    assert post("viewer", "unack").status_code == 403
    assert post("admin", "unack").status_code == 202
    assert wait_for(lambda: alerts[fp].status == "firing")
    assert alerts[fp].acked_by == ""
    audit = httpx.get(f"{cockpit.url}/api/v1/audit?limit=100", headers={"Authorization": f"Bearer {toks['admin']}"}).json()["rows"]
    applied = [(e["actor"], e["old"], e["new"]) for e in audit if e["target"] == fp and e["action"] in ("ack", "unack")
               and e["new"] != "requested"]
    assert applied == [(actor("operator"), "firing", "acknowledged"), (actor("admin"), "acknowledged", "firing")]


def test_unacknowledge_only_from_acknowledged_and_restarts_the_escalation_clock():
    lc = Lifecycle()
    a = Alert(fingerprint="f", rule_id="r", kind="threshold", severity=3, labels={}, status="firing", fired_ms=1000,
              tier="district", tier_since_ms=5000)
    alerts = {"f": a}
    with pytest.raises(ValueError):
        lc.unacknowledge(alerts, "f", "ops", 6000)
    lc.acknowledge(alerts, "f", "ops", 6000)
    t = lc.unacknowledge(alerts, "f", "lead", 9000, "handing back")
    assert (t.old, t.new, t.actor) == ("acknowledged", "firing", "lead")
    assert (a.status, a.acked_by, a.tier, a.tier_since_ms) == ("firing", "", "district", 9000)
    with pytest.raises(KeyError):
        lc.unacknowledge(alerts, "nope", "lead", 9000)
