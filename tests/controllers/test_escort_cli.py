"""``citybrain controller escort``: the 一键护航 demo end to end from the command line."""
from __future__ import annotations

import json
import os
import subprocess
import sys


def _run(*args, secret="some-master-secret-of-16+bytes"):
    env = {**os.environ, "CITYBRAIN_CONTROLLER_SECRET": secret}
    return subprocess.run([sys.executable, "-m", "citybrain", "controller", "escort", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_escort_demo_prints_requests_controller_answers_and_summary():
    res = _run()
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("route JF02 > ") and "jiefang JF02..JF10 out; qiutao QT01..QT05 out" in lines[0]
    summary = json.loads(lines[-1])
    assert summary["released"] == summary["escorted"] == 14 and summary["refused"] == 0
    assert summary["red_wait_escorted_s"] < summary["red_wait_plan_s"]
    assert 0 < summary["cross_street_max_per_signal_s"] <= 30.0
    assert any("controller QT03  applied" in ln for ln in lines)


def test_escort_bad_requests_are_messages_not_tracebacks():
    res = _run("--to", "NOPE")
    assert res.returncode != 0 and "unknown intersection 'NOPE'" in res.stderr and "Traceback" not in res.stderr
    res = _run(secret="short")
    assert res.returncode != 0 and "master secret" in res.stderr and "Traceback" not in res.stderr
