"""``citybrain replay --alerts``: the recording's windows go through the rules and the alert pipeline with
its (embedded, real) Redis state, as in ``run``; without the flag a replay leaves alerting out."""
from __future__ import annotations

import os
import re
import subprocess
import sys

CLI = [sys.executable, "-m", "citybrain"]
ENV = {**os.environ, "CITYBRAIN_REDIS_URL": ""}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=ENV, timeout=600)


def test_replay_with_and_without_alerting(tmp_path):
    sim = run("simulate", "--out", str(tmp_path / "sim"), "--hours", "3", "--start", "2026-06-01T07:00", "--seed", "5",
              "--quiet")
    assert sim.returncode == 0, sim.stderr
    plain = run("replay", str(tmp_path / "sim"), "--out", str(tmp_path / "a"))
    assert plain.returncode == 0, plain.stderr
    assert "(without alerting)" in plain.stdout and "alerts:" not in plain.stdout
    assert not (tmp_path / "a" / "redis").exists()
    full = run("replay", str(tmp_path / "sim"), "--alerts", "--out", str(tmp_path / "b"))
    assert full.returncode == 0, full.stderr
    assert "(with alerting)" in full.stdout and "Traceback" not in full.stderr
    m = re.search(r"alerts: ([\d,]+) firing, ([\d,]+) pending, ([\d,]+) kept", full.stdout)
    assert m and int(m.group(3).replace(",", "")) > 0, full.stdout  # morning rush hour: congestion at least
    # the same records either way
    count = lambda out: re.search(r"records in ([\d,]+)", out).group(1)  # noqa: E731
    assert count(plain.stdout) == count(full.stdout)
    assert (tmp_path / "b" / "redis").exists()
