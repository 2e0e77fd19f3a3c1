"""``POST /api/v1/admin/rules/reload``: admin only, validated with the engine's loader (a broken file is a
422 naming the file, rule and field, and the engine keeps its rules), audited under the token, and
applied by a real running alert engine within its command poll."""
import asyncio
import shutil
import time

import httpx
import pytest

from tests.dashboards.conftest import EngineThread, ServerThread, make_tokens


@pytest.fixture
def setup(demo_run, tmp_path):
    from streams.redis_server import EmbeddedRedis

    city, out = demo_run
    rules = tmp_path / "rules"
    shutil.copytree(_shipped_rules(), rules)
    server_r = EmbeddedRedis(tmp_path / "redis")
    url = server_r.start()
    toks = asyncio.run(make_tokens(url))
    cockpit = ServerThread(city, out, url)
    engine = EngineThread(url, rules)
    yield cockpit, engine, toks, rules
    engine.close()
    cockpit.stop()
    server_r.stop()


def _shipped_rules():
    from brain.alerts.rules import default_rules_dir

    return default_rules_dir()


def test_rule_reload_is_validated_audited_and_applied_by_the_engine(setup):
    cockpit, engine, toks, rules = setup
    c = httpx.Client(base_url=cockpit.url, timeout=30)
    h = lambda who: {"Authorization": f"Bearer {toks[who]}"}  # noqa: E731
    before = len(engine.svc.engine.rules)
    for who in ("viewer", "operator", "department", "controller"):
        assert c.post("/api/v1/admin/rules/reload", headers=h(who)).status_code == 403
    assert c.post("/api/v1/admin/rules/reload").status_code == 401

    # a valid change: one rule fewer; the engine reloads at its next poll, the answer says so
    traffic = rules / "traffic.yaml"
    text = traffic.read_text(encoding="utf-8")
    import yaml

    pack = yaml.safe_load(text)
    dropped = pack["rules"].pop()["id"]
    traffic.write_text(yaml.safe_dump(pack, allow_unicode=True), encoding="utf-8")
    r = c.post("/api/v1/admin/rules/reload", headers=h("admin"))
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["rules_path"] == str(rules) and body["rules"] == before - 1
    assert body["engine"].startswith("reloaded"), body
    assert len(engine.svc.engine.rules) == before - 1
    assert dropped not in {rule.id for rule in engine.svc.engine.rules}

    # a broken file: 422 naming the file, the rule and the field; the engine keeps what it runs
    pack["rules"][0]["tabl"] = pack["rules"][0].pop("table", "x")
    broken_id = pack["rules"][0]["id"]
    traffic.write_text(yaml.safe_dump(pack, allow_unicode=True), encoding="utf-8")
    r = c.post("/api/v1/admin/rules/reload", headers=h("admin"))
    assert r.status_code == 422
    err = r.json()["error"]
    assert str(traffic) in err["field"] and broken_id in err["field"] and err["field"].endswith(".tabl")
    assert "unknown field" in err["message"]
    time.sleep(1.5)  # a poll later: nothing was queued for the engine
    assert len(engine.svc.engine.rules) == before - 1 and engine.svc.reload_error == ""

    # the audit: requests under the admin token, the engine's reload after it
    audit = c.get("/api/v1/audit?limit=50", headers=h("admin")).json()["rows"]
    mine = [e for e in audit if e["action"] == "rules" and e["actor"].startswith("test-admin (admin ")]
    assert [e["new"] for e in mine][-2:] == ["reload-requested", "reload-refused"]
    assert any(e["actor"] == "engine" and e["new"] == "reloaded" for e in audit)
