"""The README's "A short tour" runs as written, top to bottom, in a fresh folder.

The commands are read from the README itself (so a new line in the tour is tested the day it is
written); only durations are shortened and the broker address is a real tansu broker of the test's.
Each command must exit as the tour says, print no traceback, and leave what the tour promises.
"""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.faust.conftest import broker  # noqa: F401  (a real Kafka-protocol broker fixture)

README = Path(__file__).resolve().parents[1] / "README.md"
SHORTER = {"--duration 6h": "--duration 2h", "--hours 24": "--hours 4"}
DEMO_BROKER = "kafka://127.0.0.1:9092"


def tour_commands() -> list[tuple[list[str], str]]:
    """``(argv, comment)`` for each command of the tour's code block, in order."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## A short tour"):]
    block = re.search(r"```\n(.*?)```", section, re.S).group(1)
    commands = []
    for line in block.splitlines():
        command, _, comment = line.partition("#")
        if command.strip():
            commands.append((shlex.split(command), comment.strip()))
    return commands


def _citybrain(argv: list[str]) -> list[str]:
    assert argv[0] == "citybrain", argv
    return [sys.executable, "-m", "citybrain", *argv[1:]]


def _shorten(argv: list[str], broker_url: str) -> list[str]:
    line = " ".join(argv).replace(DEMO_BROKER, broker_url)
    for long, short in SHORTER.items():
        line = line.replace(long, short)
    argv = line.split()
    if argv[1:] == ["run"]:  # the live view runs until Ctrl-C: an hour of stream time, as fast as it goes
        argv += ["--duration", "1h", "--speed", "0"]
    return argv


def _run(argv: list[str], cwd: Path, timeout: float = 400) -> subprocess.CompletedProcess:
    proc = subprocess.run(_citybrain(argv), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "120"})
    assert "Traceback" not in proc.stderr + proc.stdout, f"{' '.join(argv)}:\n{proc.stderr[-3000:]}"
    return proc


class Background:
    """A long-running tour command (the engine, the Faust worker), stopped with SIGTERM."""

    def __init__(self, argv: list[str], cwd: Path):
        self.log_path = cwd / f"bg-{argv[1]}.log"
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen(_citybrain(argv), cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_for(self, ready, what: str, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if self.proc.poll() is not None:
                pytest.fail(f"{what}: exited with {self.proc.returncode}: {self.log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"{what} not within {timeout_s} s: {self.log_path.read_text()[-3000:]}")
            time.sleep(0.5)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"did not stop on SIGTERM: {self.log_path.read_text()[-3000:]}")
        self.log.close()
        out = self.log_path.read_text()
        assert "Traceback" not in out, out[-3000:]
        return out


def test_the_tour_lists_what_this_test_checks():
    names = [" ".join(argv[1:3]) for argv, _ in tour_commands()]
    assert names[0] == "--help" and "run" in names and "replay day/events.jsonl" in names
    assert any(n.startswith("city check") for n in names)


@pytest.mark.timeout(1800)
def test_readme_tour_runs_as_written(tmp_path, broker):  # noqa: F811
    for argv, comment in tour_commands():
        argv = _shorten(argv, broker)
        sub = argv[1:3]
        if sub[:1] == ["worker"]:
            worker = Background(argv, tmp_path)
            worker.wait_for(lambda: any((tmp_path / "var" / "faust").glob("*.ckpt")), "worker checkpoint")
            worker.stop()
            continue
        if "running engine" in comment:
            engine = Background(["citybrain", "run", "--headless", "--speed", "60", "--out", "var/live"], tmp_path)
            env_out = ["--out", "var/live"] if "--out" not in argv else []
            try:
                state = {}

                def answered():
                    state["proc"] = _run(argv + env_out, tmp_path, timeout=60)
                    return state["proc"].returncode == 0

                engine.wait_for(answered, f"{' '.join(argv)} against a running engine")
            finally:
                engine.stop()
            continue
        proc = _run(argv, tmp_path)
        assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
        if sub == ["--help"]:
            assert "run" in proc.stdout and "replay" in proc.stdout
        elif sub[:1] == ["simulate"]:
            assert (tmp_path / "day" / "events.jsonl").stat().st_size > 0
        elif sub[:1] == ["replay"]:
            assert "-> ok" in proc.stdout and "warning" not in proc.stderr
            assert (tmp_path / "var" / "replay" / "day-events" / "checkpoint.bin").exists()
        elif sub == ["run", "--source"]:
            windows = int(re.search(r"windows (\d+)", proc.stderr).group(1))
            assert 20 <= windows <= 30, f"--duration 2h over a recording closed {windows} five-minute windows"
        elif sub[:2] == ["city", "check"]:
            assert proc.stdout.startswith("ok:")
        elif sub[:2] == ["city", "show"]:
            assert (tmp_path / "city.png").stat().st_size > 0
        elif sub[:1] == ["plan"]:
            assert (tmp_path / "wave.png").stat().st_size > 0
        elif sub[:1] == ["produce"]:
            assert re.search(r"sent [1-9][\d,]* records", proc.stdout), proc.stdout
