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


def _cli(*args, env_extra=None):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k not in ("CITYBRAIN_API_URL", "CITYBRAIN_TOKEN")}
    env.update(env_extra or {})
    p = subprocess.run([str(Path(sys.executable).parent / "citybrain"), "rules", "reload", *args],
                       capture_output=True, text=True, timeout=120, env=env)
    return p.returncode, p.stdout, p.stderr


def test_rules_reload_command_through_the_api(setup):
    """`citybrain rules reload --api URL --token T`: a real CLI process against the running cockpit and engine."""
    cockpit, engine, toks, rules = setup
    api = cockpit.url.rstrip("/")
    before = len(engine.svc.engine.rules)
    traffic = rules / "traffic.yaml"
    import yaml

    pack = yaml.safe_load(traffic.read_text(encoding="utf-8"))
    pack["rules"].pop()
    traffic.write_text(yaml.safe_dump(pack, allow_unicode=True), encoding="utf-8")
    rc, out, err = _cli("--api", api, "--token", toks["admin"])
    assert rc == 0, err
    assert f"{before - 1} rule(s) from {rules}" in out and "requested by test-admin (admin " in out
    assert "engine: reloaded" in out and len(engine.svc.engine.rules) == before - 1
    # the environment variables serve as well
    rc, out, _ = _cli(env_extra={"CITYBRAIN_API_URL": api, "CITYBRAIN_TOKEN": toks["admin"]})
    assert rc == 0 and "engine: reloaded" in out

    # refusals are one clear sentence each, never a traceback
    rc, _, err = _cli("--api", api, "--token", toks["operator"])
    assert rc == 2 and "may not reload rules (403)" in err and "admin token is needed" in err
    rc, _, err = _cli("--api", api, "--token", toks["admin"] + "x")
    assert rc == 2 and "refused the token (401)" in err
    rc, _, err = _cli("--api", api + "/static", "--token", toks["admin"])
    assert rc == 2 and "no rule-reload endpoint at" in err and "must be the cockpit's base URL" in err
    rc, _, err = _cli("--api", "localhost:8080", "--token", toks["admin"])
    assert rc == 2 and "--api must be an http:// or https:// URL" in err
    rc, _, err = _cli("--token", toks["admin"])
    assert rc == 2 and "give --api URL" in err

    # a broken file: exit 1, the file, rule and key named; the engine keeps its rules
    pack["rules"][0]["tabl"] = pack["rules"][0].pop("table", "x")
    traffic.write_text(yaml.safe_dump(pack, allow_unicode=True), encoding="utf-8")
    rc, out, err = _cli("--api", api, "--token", toks["admin"])
    assert rc == 1 and "the engine keeps its running rules" in err
    assert f"{traffic}: rules[0] ({pack['rules'][0]['id']}).tabl" in err and "unknown field" in err
    assert len(engine.svc.engine.rules) == before - 1
    for e in (out + err).splitlines():
        assert "Traceback" not in e
