"""Redis unreachable at start: one clear sentence and exit status 2, not an 80-line traceback."""
from __future__ import annotations

import os
import socket
import subprocess
import sys


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nobody listens once the socket is closed


def test_unreachable_redis_at_start_is_a_clear_error(tmp_path):
    url = f"redis://127.0.0.1:{_closed_port()}"
    env = {**os.environ, "CITYBRAIN_REDIS_URL": url}
    proc = subprocess.run([sys.executable, "-m", "citybrain", "run", "--headless", "--speed", "0", "--duration", "10m",
                           "--no-http", "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2, proc.stderr
    assert f"cannot reach the alert-state Redis at {url}" in proc.stderr and "--no-alerts" in proc.stderr
    assert "Traceback" not in proc.stderr
