"""`citybrain worker` / `citybrain produce` fail with a clear message, not a traceback, when the user can fix it."""
from __future__ import annotations

import socket
import subprocess
import sys

import pytest

pytest.importorskip("faust", reason="faust-streaming is not installed (the `test`/`kafka` extras)")
pytest.importorskip("aiokafka", reason="aiokafka is not installed (the `test`/`kafka` extras)")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nobody listens once the socket is closed


def _run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "citybrain", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_unreachable_broker_is_a_clear_error(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"kind":"noise","sensor_id":"N1","ts_ms":1,"laeq_db":50}\n')
    broker = f"kafka://127.0.0.1:{_closed_port()}"
    for args in (("produce", "in.jsonl", "--broker", broker), ("worker", "--broker", broker, "--out", "w")):
        proc = _run(*args, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert "cannot reach the Kafka broker" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_bad_arguments_are_clear_errors(tmp_path):
    cases = [
        (("produce", "missing.jsonl", "--broker", "kafka://127.0.0.1:9"), "is not a file"),
        (("worker", "--broker", "127.0.0.1:9092"), "kafka://HOST:PORT"),
        (("worker", "--broker", "kafka://127.0.0.1:9", "--window", "7"), "window_s must divide 3600"),
    ]
    for args, message in cases:
        proc = _run(*args, cwd=tmp_path)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


def test_unreadable_checkpoint_is_a_clear_error(tmp_path, broker):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "faust-citybrain-p0.ckpt").write_bytes(b"not a checkpoint")
    proc = _run("worker", "--broker", broker, "--out", "w", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "unreadable" in proc.stderr and "--fresh" in proc.stderr
    assert "Traceback" not in proc.stderr
