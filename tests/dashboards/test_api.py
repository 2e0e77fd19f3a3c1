"""API v1 behaviour over real HTTP and Redis: identities in the audit log, silence limits, department scopes,
webhook allow-list, JSON errors naming the field, history pagination, live push."""
import json

import httpx
import polars as pl
import pytest
import redis


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def h(tokens, who):
    return {"Authorization": f"Bearer {tokens[who]}"}


def audit_rows(client, tokens, n=200):
    return client.get(f"/api/v1/audit?limit={n}", headers=h(tokens, "admin")).json()["rows"]


def test_forged_ack_is_recorded_under_the_token_not_the_typed_name(client, tokens, firing_fp, cockpit_redis):
    fp = firing_fp[0]
    r = client.post(f"/api/v1/alerts/{fp}/ack", headers=h(tokens, "operator"),
                    json={"comment": "on it", "by": "Mayor (forged)", "actor": "Mayor (forged)"})
    assert r.status_code == 202, r.text
    me = client.get("/api/v1/whoami", headers=h(tokens, "operator")).json()["actor"]
    assert r.json()["acked_by"] == me and "Mayor" not in me
    queued = json.loads(redis.Redis.from_url(cockpit_redis).hget("citybrain:alerts:acks", fp))
    assert queued["who"] == me  # what the engine will apply
    entries = [e for e in audit_rows(client, tokens) if e["action"] == "ack" and e["target"] == fp]
    assert entries and entries[-1]["actor"] == me
    assert not any("Mayor" in e["actor"] for e in audit_rows(client, tokens, 1000))
    # a viewer cannot acknowledge at all
    assert client.post(f"/api/v1/alerts/{fp}/ack", headers=h(tokens, "viewer")).status_code == 403


@pytest.mark.parametrize("matchers,duration,field", [
    (["rule=~.*"], "1h", "matchers"),              # the whole city
    ([], "1h", "matchers"),                       # nothing at all
    (["district!=nowhere"], "1h", "matchers"),     # negative matchers only
    (["district="], "1h", "matchers"),             # an empty value matches every alert without the label
    (["district=nanhu"], "100000h", "duration"),   # longer than silence_max_h
    (["district=nanhu"], "0s", "duration"),
    (["district=nanhu"], "soon", "duration"),
    (["not a matcher"], "1h", "matchers"),
])
def test_city_wide_or_endless_silences_are_refused(client, tokens, matchers, duration, field):
    r = client.post("/api/v1/silences", headers=h(tokens, "operator"), json={"matchers": matchers, "duration": duration})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field


def test_a_targeted_silence_is_made_and_expired_under_the_token(client, tokens):
    r = client.post("/api/v1/silences", headers=h(tokens, "operator"),
                    json={"matchers": ["district=gangkou", "category=traffic"], "duration": "2h", "comment": "works"})
    assert r.status_code == 201, r.text
    s = r.json()
    me = client.get("/api/v1/whoami", headers=h(tokens, "operator")).json()["actor"]
    assert s["created_by"] == me and s["ends_ms"] - s["starts_ms"] == 2 * 3_600_000
    listed = {x["id"]: x for x in client.get("/api/v1/silences", headers=h(tokens, "viewer")).json()["rows"]}
    assert listed[s["id"]]["active"] is True
    assert client.post(f"/api/v1/silences/{s['id']}/expire", headers=h(tokens, "operator")).status_code == 200
    listed = {x["id"]: x for x in client.get("/api/v1/silences", headers=h(tokens, "viewer")).json()["rows"]}
    assert listed[s["id"]]["active"] is False
    actions = [(e["actor"], e["new"]) for e in audit_rows(client, tokens) if e["target"] == s["id"]]
    assert actions == [(me, "create"), (me, "expire")]


def test_departments_see_and_edit_only_their_own_subscriptions(client, tokens):
    traffic, env = h(tokens, "department"), h(tokens, "department_other")
    body = {"channel": {"type": "webhook", "url": "http://127.0.0.1:9/hook"}, "categories": ["traffic"]}
    r = client.put("/api/v1/subscriptions/tp-jams", headers=traffic, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["department"] == "交警支队"  # taken from the token's scope
    assert [s["id"] for s in client.get("/api/v1/subscriptions", headers=env).json()["rows"]] == []
    assert client.get("/api/v1/subscriptions/tp-jams", headers=env).status_code == 404
    assert client.delete("/api/v1/subscriptions/tp-jams", headers=env).status_code == 404
    takeover = client.put("/api/v1/subscriptions/tp-jams", headers=env, json=body)
    assert takeover.status_code == 403 and takeover.json()["error"]["field"] == "sub_id"
    posing = client.put("/api/v1/subscriptions/env-x", headers=env, json={**body, "department": "交警支队"})
    assert posing.status_code == 403 and posing.json()["error"]["field"] == "department"
    admin_view = [s["id"] for s in client.get("/api/v1/subscriptions", headers=h(tokens, "admin")).json()["rows"]]
    assert "tp-jams" in admin_view
    assert client.delete("/api/v1/subscriptions/tp-jams", headers=traffic).status_code == 200


def test_webhooks_only_to_allowed_hosts(client, tokens):
    bad = client.put("/api/v1/subscriptions/exfil", headers=h(tokens, "admin"),
                     json={"department": "x", "channel": {"type": "webhook", "url": "http://evil.example:80/steal"}})
    assert bad.status_code == 403 and bad.json()["error"]["field"] == "channel.url"
    ok = client.put("/api/v1/subscriptions/ok-hook", headers=h(tokens, "admin"),
                    json={"department": "x", "channel": {"type": "webhook", "url": "https://hooks.city.example/a"}})
    assert ok.status_code == 200, ok.text
    client.delete("/api/v1/subscriptions/ok-hook", headers=h(tokens, "admin"))


def test_controllers_ask_priority_only_on_their_corridors(client, tokens):
    body = {"intersection": "JF02", "eta_s": 30, "vehicle_id": "AMB-9"}
    assert client.post("/api/v1/plans/jiefang/priority", headers=h(tokens, "controller"), json=body).status_code == 202
    other = client.post("/api/v1/plans/jiefang/priority", headers=h(tokens, "controller_other"), json=body)
    assert other.status_code == 403 and other.json()["error"]["field"] == "corridor"
    wrong = client.post("/api/v1/plans/jiefang/priority", headers=h(tokens, "controller"), json={**body, "intersection": "QT01"})
    assert wrong.status_code == 422 and wrong.json()["error"]["field"] == "intersection"


@pytest.mark.parametrize("path,status,field", [
    ("/api/v1/vitals/no_such_table/latest", 404, "table"),
    ("/api/v1/vitals/district/history?limit=0", 422, "limit"),
    ("/api/v1/vitals/district/history?from_ms=abc", 422, "from_ms"),
    ("/api/v1/vitals/air_station/latest?segment=S1", 400, "segment"),
    ("/api/v1/vitals/district/history?columns=tpi,nope", 400, "columns"),
    ("/api/v1/alerts?status=burning", 422, "status"),
    ("/api/v1/alerts/ffffffffffffffffff", 404, "fingerprint"),
    ("/api/v1/plans/nowhere/history", 404, "corridor"),
    ("/api/v1/no/such/route", 404, "path"),
])
def test_bad_requests_get_json_errors_naming_the_field(client, tokens, path, status, field):
    r = client.get(path, headers=h(tokens, "viewer"))
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["field"] == field and err["message"] and "Traceback" not in r.text


def test_audit_log_is_append_only_through_the_api(client, tokens):
    for method in ("DELETE", "PUT", "POST", "PATCH"):
        assert client.request(method, "/api/v1/audit", headers=h(tokens, "admin")).status_code == 405


def test_history_pages_cover_the_parquet_table_exactly(client, tokens, demo_run):
    _, out = demo_run
    truth = pl.read_parquet(out / "history" / "district" / "*.parquet").filter(pl.col("district") == "nanhu")
    got, offset = [], 0
    while offset is not None:
        page = client.get(f"/api/v1/vitals/district/history?district=nanhu&columns=tpi&limit=7&offset={offset}",
                          headers=h(tokens, "viewer")).json()
        assert page["total"] == truth.height
        got += page["rows"]
        offset = page["next_offset"]
    assert [r["window_end_ms"] for r in got] == sorted(truth["window_end_ms"].to_list())
    last = truth["window_end_ms"].max()
    latest = client.get("/api/v1/vitals/district/latest?district=nanhu", headers=h(tokens, "viewer")).json()
    assert latest["window_end_ms"] == last
    assert latest["rows"][0]["tpi"] == pytest.approx(truth.filter(pl.col("window_end_ms") == last)["tpi"][0])


def test_metrics_export_district_vitals(client, tokens):
    text = client.get("/metrics", headers=h(tokens, "viewer")).text
    for d in ("nanhu", "gangkou", "xiyuan", "dongqiao", "city"):
        assert f'citybrain_vitals_health_index{{district="{d}"}}' in text


def test_live_push_says_hello_and_pushes_alert_changes(server, tokens, cockpit_redis):
    r = redis.Redis.from_url(cockpit_redis)
    with httpx.Client(base_url=server.url, timeout=10) as c:
        with c.stream("GET", "/api/v1/live", headers=h(tokens, "viewer")) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            events = []
            for line in resp.iter_lines():
                if line.startswith("event: "):
                    events.append(line[7:])
                    if events == ["hello"] or events[-1] == "alerts" and len(events) == 2:
                        # the engine rewrites its feed snapshot when alert state changes
                        r.set("citybrain:alerts:feed", json.dumps([{"fingerprint": "x"}] * (len(events) + 40)))
                    if events.count("alerts") >= 2:
                        break
    assert events[0] == "hello" and events.count("alerts") >= 2
