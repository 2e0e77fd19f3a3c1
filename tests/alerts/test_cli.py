"""``citybrain alerts`` and ``citybrain rules`` against a real Redis (the engine runs in-process)."""
import asyncio
import json

import pytest

from brain.alerts.routing import Subscription
from citybrain.cli import main
from citybrain.commands.tokens import local_actor
from streams.alerts.service import AlertService, load_subscriptions_file
from streams.alerts.store import AlertStore
from tests.alerts.svc_helpers import M, seg_table, write_rules

EXAMPLE = __import__("streams.alerts", fromlist=["x"]).__path__[0] + "/subscriptions.example.yaml"


@pytest.fixture
def engine_url(redis_url, tmp_path, monkeypatch):
    monkeypatch.setenv("CITYBRAIN_REDIS_URL", redis_url)

    async def seed():
        svc = await AlertService.start(redis_url, rules_path=write_rules(tmp_path), deliver=False,
                                       subscriptions=[Subscription.from_dict({"id": "ops", "department": "ops",
                                                                              "channel": {"type": "log"}})])
        await svc.on_window(seg_table({"S1": 2.5, "S2": 3.1}), 0)
        await svc.close()

    asyncio.run(seed())
    return redis_url


def run_json(capsys, *argv):
    assert main(list(argv) + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_list_ack_and_the_engine_applies_it(engine_url, capsys, tmp_path):
    rows = run_json(capsys, "alerts", "list")
    assert sorted(r["where"].split("/")[-1] for r in rows) == ["S1", "S2"]
    assert {r["status"] for r in rows} == {"firing"}
    fp = rows[0]["fingerprint"]
    assert main(["alerts", "ack", fp[:6], "--comment", "unit sent"]) == 0
    assert "sent to the engine" in capsys.readouterr().out

    async def engine_window():
        svc = await AlertService.start(engine_url, rules_path=write_rules(tmp_path), deliver=False)
        await svc.on_window(seg_table({"S1": 2.5, "S2": 3.1}), M)
        await svc.close()

    asyncio.run(engine_window())
    rows = {r["fingerprint"]: r for r in run_json(capsys, "alerts", "list")}
    me = local_actor()  # the local admin path records the login, not a typed name
    assert rows[fp]["status"] == "acknowledged" and rows[fp]["acked_by"] == me
    audit = run_json(capsys, "alerts", "audit", "--limit", "100")
    assert any(e["actor"] == me and e["new"] == "acknowledged" for e in audit)


def test_bad_cli_input_is_a_clear_error_not_a_traceback(engine_url, capsys):
    assert main(["alerts", "ack", "ffffffffff"]) == 2
    assert "no alert with fingerprint" in capsys.readouterr().err
    assert main(["alerts", "ack", ""]) == 2  # empty prefix matches both alerts
    assert "matches 2 alerts" in capsys.readouterr().err
    assert main(["alerts", "silence", "add", "--match", "district"]) == 2
    assert "matcher" in capsys.readouterr().err
    assert main(["alerts", "subscriptions", "add", "/nonexistent.yaml"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_forged_identity_and_city_wide_silence_are_refused(engine_url, capsys):
    rows = run_json(capsys, "alerts", "list")
    assert main(["alerts", "ack", rows[0]["fingerprint"], "--by", "Mayor (forged)"]) == 2
    assert "--by 'Mayor (forged)' is not accepted" in capsys.readouterr().err
    assert main(["alerts", "silence", "add", "--match", "rule=~.*", "--for", "1h"]) == 2
    assert "concrete label" in capsys.readouterr().err
    assert main(["alerts", "silence", "add", "--match", "segment_id=S1", "--for", "100000h"]) == 2
    assert "at most 24 h" in capsys.readouterr().err
    assert main(["alerts", "silence", "add", "--match", "rule=~.*", "--for", "100000h", "--by", "anonymous"]) == 2
    assert run_json(capsys, "alerts", "silence", "list") == []
    assert {r["status"] for r in run_json(capsys, "alerts", "list")} == {"firing"}  # nothing acknowledged


def test_silence_add_list_expire(engine_url, capsys):
    assert main(["alerts", "silence", "add", "--match", "segment_id=S1", "--for", "2h", "--comment", "works"]) == 0
    sid = capsys.readouterr().out.split()[1]
    rows = run_json(capsys, "alerts", "silence", "list")
    assert [(r["id"], r["active"], r["by"]) for r in rows] == [(sid, "yes", local_actor())]
    assert main(["alerts", "silence", "expire", "--id", sid]) == 0
    capsys.readouterr()
    assert run_json(capsys, "alerts", "silence", "list")[0]["active"] == "no"


def test_subscriptions_add_list_remove_with_the_example_file(engine_url, capsys):
    expected = {s.id for s in load_subscriptions_file(EXAMPLE)}
    assert main(["alerts", "subscriptions", "add", EXAMPLE]) == 0
    capsys.readouterr()
    assert {r["id"] for r in run_json(capsys, "alerts", "subscriptions")} == expected | {"ops"}
    assert main(["alerts", "subscriptions", "remove", "city-command"]) == 0
    capsys.readouterr()
    assert "city-command" not in {r["id"] for r in run_json(capsys, "alerts", "subscriptions")}
    assert main(["alerts", "subscriptions", "remove", "city-command"]) == 2


def test_parked_list_and_replay(engine_url, capsys):
    from brain.alerts.model import Notification

    async def park():
        store = AlertStore.from_url(engine_url)
        n = Notification(key="ops:x:1", subscription_id="ops", group_key="x", status="firing", reason="alert", ts_ms=0, alerts=[])
        await store.ensure_group("ops")
        await store.r.xadd(store.outbox("ops"), {"key": n.key, "note": b"{}"})
        (eid, *_), = [(e, f) for e, f in (await store.r.xrange(store.outbox("ops")))]
        await store.park("ops", eid, n.key, n, 8, "HTTP 503", actor="delivery:ops")
        await store.close()

    asyncio.run(park())
    rows = run_json(capsys, "alerts", "parked")
    assert [(r["key"], r["attempts"]) for r in rows] == [("ops:x:1", 8)]
    assert main(["alerts", "parked", "--replay"]) == 0
    assert "1 parked" in capsys.readouterr().out
    assert run_json(capsys, "alerts", "parked") == []


def test_rules_check(tmp_path, capsys):
    assert main(["rules", "check", "--against-vitals"]) == 0
    assert capsys.readouterr().out.startswith("ok:")
    bad = tmp_path / "bad.yaml"
    bad.write_text("pack: x\nrules: [{id: r, kind: threshold, table: segment_traffic, value: nope, op: '>', threshold: 1, severity: red}]\n")
    assert main(["rules", "check", str(bad)]) == 0  # valid on its own
    capsys.readouterr()
    assert main(["rules", "check", str(bad), "--against-vitals"]) == 1
    assert "no column(s) ['nope']" in capsys.readouterr().err
    bad.write_text("pack: x\nrules: [{id: r, kind: threshold}]\n")
    assert main(["rules", "check", str(bad)]) == 1


def test_show_as_cap_and_sdm(engine_url, capsys):
    from brain.alerts.cap import check_cap

    fp = run_json(capsys, "alerts", "list")[0]["fingerprint"]
    assert main(["alerts", "show", fp, "--format", "cap", "--admin-code", "330106"]) == 0
    xml = capsys.readouterr().out
    assert check_cap(xml) == [] and "<identifier>330106CITYBRAIN" in xml
    assert main(["alerts", "show", fp, "--format", "sdm"]) == 0
    sdm = json.loads(capsys.readouterr().out)
    assert sdm["type"] == "Alert" and sdm["category"] == "traffic"
    assert main(["alerts", "show", fp, "--format", "cap", "--admin-code", "33"]) == 2
    assert "6-digit" in capsys.readouterr().err


def test_example_subscriptions_name_places_of_the_demo_city():
    import yaml

    from brain.city import demo_city_path, load_city

    city = load_city(demo_city_path())
    places = {"districts": {d.id for d in city.districts}, "streets": {s.id for s in city.streets},
              "cells": {c.id for c in city.cells}}
    subs = yaml.safe_load(open(EXAMPLE, encoding="utf-8"))["subscriptions"]
    named = [(key, value) for sub in subs for key in places for value in sub.get(key, [])]
    assert named, "the example should show a subscription limited to a place"
    for key, value in named:
        assert value in places[key], f"{key} {value!r} is not in the demo city"
