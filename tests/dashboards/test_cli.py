"""``citybrain alerts`` as a client of API v1 (the token decides who and what), and ``citybrain tokens``."""
import json
import time

import httpx

from citybrain.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_alerts_commands_act_through_the_api_under_the_tokens_identity(server, tokens, firing_fp, capsys):
    api = ["--api", server.url]
    code, out, _ = run(capsys, "alerts", "list", *api, "--token", tokens["viewer"], "--json")
    assert code == 0 and {r["fingerprint"] for r in json.loads(out)} >= set(firing_fp)
    fp = firing_fp[1]
    code, _, err = run(capsys, "alerts", "ack", fp, *api, "--token", tokens["viewer"])
    assert code == 2 and "403" in err and "may not ack" in err
    code, out, _ = run(capsys, "alerts", "ack", fp, *api, "--token", tokens["operator"], "--comment", "cli")
    assert code == 0 and "test-operator (operator" in out
    code, _, err = run(capsys, "alerts", "ack", fp, *api, "--token", tokens["operator"], "--by", "Mayor (forged)")
    assert code == 2 and "not accepted" in err
    code, _, err = run(capsys, "alerts", "silence", "add", "--match", "rule=~.*", "--for", "100000h", *api,
                       "--token", tokens["operator"])
    assert code == 2 and "matchers" in err and "concrete label" in err
    code, out, _ = run(capsys, "alerts", "audit", "--limit", "50", *api, "--token", tokens["operator"], "--json")
    entries = [e for e in json.loads(out) if e["target"] == fp and e["action"] == "ack"]
    assert entries and entries[-1]["actor"].startswith("test-operator (operator ")
    code, _, err = run(capsys, "alerts", "ack", fp, *api)
    assert code == 2 and "--token" in err


def test_tokens_create_list_revoke_on_the_engines_redis(server, cockpit_redis, capsys, monkeypatch):
    monkeypatch.setenv("CITYBRAIN_REDIS_URL", cockpit_redis)
    code, out, _ = run(capsys, "tokens", "create", "--name", "wall-screen", "--role", "viewer", "--expires", "2h", "--json")
    assert code == 0
    made = json.loads(out)
    h = {"Authorization": f"Bearer {made['token']}"}
    assert httpx.get(server.url + "/api/v1/whoami", headers=h).json()["role"] == "viewer"
    code, out, _ = run(capsys, "tokens", "list", "--json")
    listed = {t["id"]: t for t in json.loads(out)}
    assert listed[made["id"]]["name"] == "wall-screen" and "secret_sha256" not in listed[made["id"]]
    assert made["token"] not in out
    assert run(capsys, "tokens", "revoke", made["id"])[0] == 0
    # the server trusts a verified token for token_cache_s (1 s) when revoked from another process
    end = time.monotonic() + 3
    while httpx.get(server.url + "/api/v1/whoami", headers=h).status_code != 401 and time.monotonic() < end:
        time.sleep(0.1)
    assert httpx.get(server.url + "/api/v1/whoami", headers=h).status_code == 401
    code, _, err = run(capsys, "tokens", "create", "--name", "d", "--role", "department")
    assert code == 2 and "scope" in err
    code, _, err = run(capsys, "tokens", "revoke", "nosuchid")
    assert code == 2 and "no token" in err


def test_subscriptions_through_the_api_a_department_sees_and_edits_only_its_own(server, tokens, cockpit_redis,
                                                                                capsys, tmp_path):
    api = ["--api", server.url]
    mine, theirs = tmp_path / "mine.yaml", tmp_path / "theirs.yaml"
    mine.write_text("subscriptions:\n"
                    "  - {id: cli-police-1, department: 交警支队, categories: [traffic], min_severity: yellow,\n"
                    "     channel: {type: webhook, url: 'http://127.0.0.1:9/hook'}}\n", encoding="utf-8")
    theirs.write_text("- {id: cli-env-1, department: 生态环境局, categories: [air], min_severity: blue,\n"
                      "   channel: {type: webhook, url: 'http://hooks.city.example/air'}}\n", encoding="utf-8")
    assert run(capsys, "alerts", "subscriptions", "add", str(mine), *api, "--token", tokens["department"])[0] == 0
    assert run(capsys, "alerts", "subscriptions", "add", str(theirs), *api, "--token", tokens["department_other"])[0] == 0
    # each department lists its own only
    code, out, _ = run(capsys, "alerts", "subscriptions", "list", *api, "--token", tokens["department"], "--json")
    ids = {r["id"] for r in json.loads(out)}
    assert code == 0 and "cli-police-1" in ids and "cli-env-1" not in ids
    # 交警支队 cannot write a subscription for 生态环境局, nor remove one of theirs (not even learn it exists)
    code, _, err = run(capsys, "alerts", "subscriptions", "add", str(theirs), *api, "--token", tokens["department"])
    assert code == 2 and "cli-env-1" in err and "403" in err
    code, _, err = run(capsys, "alerts", "subscriptions", "remove", "cli-env-1", *api, "--token", tokens["department"])
    assert code == 2 and "404" in err
    # a viewer may not manage subscriptions; a host outside the allow-list is refused with the field named
    code, _, err = run(capsys, "alerts", "subscriptions", "list", *api, "--token", tokens["viewer"])
    assert code == 2 and "403" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {id: cli-police-2, department: 交警支队, channel: {type: webhook, url: 'http://evil.example/x'}}\n",
                   encoding="utf-8")
    code, _, err = run(capsys, "alerts", "subscriptions", "add", str(bad), *api, "--token", tokens["department"])
    assert code == 2 and "channel.url" in err and "allow-list" in err
    # the admin sees both; the audit names the department token that stored each
    code, out, _ = run(capsys, "alerts", "subscriptions", "list", *api, "--token", tokens["admin"], "--json")
    assert {"cli-police-1", "cli-env-1"} <= {r["id"] for r in json.loads(out)}
    code, out, _ = run(capsys, "alerts", "audit", "--limit", "200", *api, "--token", tokens["admin"], "--json")
    stored = [e for e in json.loads(out) if e["target"] == "cli-police-1"]
    assert stored and stored[-1]["actor"].startswith("test-department (department ")
    assert run(capsys, "alerts", "subscriptions", "remove", "cli-police-1", *api, "--token", tokens["department"])[0] == 0
    assert run(capsys, "alerts", "subscriptions", "remove", "cli-env-1", *api, "--token", tokens["department_other"])[0] == 0
    code, out, _ = run(capsys, "alerts", "subscriptions", "list", *api, "--token", tokens["admin"], "--json")
    assert not {"cli-police-1", "cli-env-1"} & {r["id"] for r in json.loads(out)}  # nothing left for other tests
