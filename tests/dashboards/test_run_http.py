"""``citybrain run`` starts the cockpit in its own process by default (URL and a first admin token printed), serving
the engine's newest window from memory; ``--no-http`` leaves it off."""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

CITYBRAIN = str(Path(sys.executable).parent / "citybrain")


def test_run_serves_the_cockpit_with_the_engines_live_window(tmp_path):
    log = tmp_path / "run.log"
    env = {k: v for k, v in os.environ.items() if k != "CITYBRAIN_REDIS_URL"}
    with open(log, "w") as err:
        proc = subprocess.Popen([CITYBRAIN, "run", "--headless", "--fresh", "--speed", "300", "--duration", "2h",
                                 "--out", str(tmp_path / "out"), "--http-port", "0"],
                                stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        end = time.monotonic() + 300
        while not re.search(r"first admin token.*(cbt_\S+)", log.read_text()) and time.monotonic() < end:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.2)
        text = log.read_text()
        url = re.search(r"cockpit and API v1 at (http://127\.0\.0\.1:\d+/)", text).group(1)
        token = re.search(r"first admin token.*(cbt_\S+)", text).group(1)
        h = {"Authorization": f"Bearer {token}"}
        assert httpx.get(url + "api/v1/whoami", headers=h, timeout=30).json()["role"] == "admin"
        latest = None
        while time.monotonic() < end:
            latest = httpx.get(url + "api/v1/vitals/district/latest", headers=h, timeout=30)
            if latest.status_code == 200 and latest.json().get("source") == "engine":
                break
            time.sleep(0.2)
        assert latest.json()["source"] == "engine" and latest.json()["rows"]  # the window in memory, not a file
        assert httpx.get(url + "healthz", timeout=30).json()["engine_in_process"] is True
        assert proc.wait(300) == 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)


def test_no_http_starts_no_web_service(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CITYBRAIN_REDIS_URL"}
    done = subprocess.run([CITYBRAIN, "run", "--headless", "--fresh", "--speed", "0", "--duration", "30m",
                           "--out", str(tmp_path / "out"), "--no-http"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "cockpit" not in done.stderr and "cbt_" not in done.stderr
