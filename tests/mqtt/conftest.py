"""A real MQTT broker (Debian's mosquitto) per test, on a free loopback port, with persistence on.

The broker runs in the foreground as a child process (never daemonized) so the test stops it by
the PID it started; ``restart()`` stops it with SIGTERM (mosquitto then writes its persistence file)
and starts it again on the same port and data folder. Without mosquitto the tests skip, except under
CI=true, where a missing broker is a failure (scripts/test.sh installs it).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

# `user root`: mosquitto started as root would otherwise switch to the `mosquitto` user, which cannot
# write its persistence file into the test's folder (and then loses the queue on restart, silently).
CONFIG = """\
listener {port} 127.0.0.1
allow_anonymous true
user root
persistence true
persistence_location {data}/
autosave_interval 1
max_queued_messages 0
max_inflight_messages 100
log_dest file {data}/mosquitto.log
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """One mosquitto process of this test: ``url``, ``start()``, ``stop()``, ``restart()``."""

    def __init__(self, binary: str, folder: Path):
        self.binary = binary
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.config = folder / "mosquitto.conf"
        self.config.write_text(CONFIG.format(port=self.port, data=folder))
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.starts += 1
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"mosquitto exited with {self.proc.returncode}: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("mosquitto did not listen within 10 s")
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # a clean stop: mosquitto saves its persistence file
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def mosquitto(tmp_path):
    """A started :class:`Mosquitto` (stopped at teardown)."""
    binary = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if os.access(p, os.X_OK)), None)
    if binary is None:
        message = "mosquitto not installed (apt-get install -y mosquitto)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + ": CI must install it (scripts/test.sh)")
        pytest.skip(message)
    pytest.importorskip("aiomqtt", reason="aiomqtt is not installed (the `mqtt` extra)")
    broker = Mosquitto(binary, tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
