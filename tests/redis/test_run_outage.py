"""``citybrain run`` end to end while its Redis (a real redis-server, CITYBRAIN_REDIS_URL) is SIGKILLed and
started again: the run goes on, vital-sign history is identical to an uninterrupted run with the same seed,
``/metrics`` shows the outage and the buffered alert transactions, and the notification log in Redis holds the
same notifications as the uninterrupted run's, each once."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import polars as pl
import redis

from tests.alerts.conftest import free_port


def history(out: Path) -> Counter:
    rows: Counter = Counter()
    for table in sorted(p for p in (out / "history").iterdir() if p.is_dir()):
        for f in table.glob("*.parquet"):
            df = pl.read_parquet(f)
            rows.update(f"{table.name}:{h}" for h in df.hash_rows(seed=1).to_list())
    return rows


def run(out: Path, url: str, metrics_port: int | None = None, speed: str = "0") -> subprocess.Popen:
    env = {**os.environ, "CITYBRAIN_REDIS_URL": url}
    args = [sys.executable, "-m", "citybrain", "run", "--headless", "--no-http", "--speed", speed, "--duration", "3h",
            "--seed", "5", "--start", "2026-11-16T06:00", "--out", str(out)]
    if metrics_port:
        args += ["--metrics-port", str(metrics_port)]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def scrape(port: int) -> str:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return ""


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return -1.0


def notifications(url: str) -> list[str]:
    r = redis.Redis.from_url(url)
    return [f[b"key"].decode() for _, f in r.xrange("citybrain:alerts:notifications")]


def test_run_keeps_going_through_a_redis_kill_and_restart(redis_process, tmp_path):
    peer_redis = redis_process("always")
    p = run(tmp_path / "peer", peer_redis.url)
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err

    r = redis_process("everysec")
    port = free_port()
    proc = run(tmp_path / "cut", r.url, metrics_port=port, speed="1200")  # 3 h in ~9 s of wall time
    try:
        end = time.monotonic() + 300
        while metric(scrape(port), "citybrain_alert_applied_tx_total") < 5:
            assert proc.poll() is None and time.monotonic() < end, proc.stderr.read() if proc.poll() is not None else ""
            time.sleep(0.2)
        r.kill()
        seen_down = ""
        end = time.monotonic() + 60
        while time.monotonic() < end and proc.poll() is None:
            text = scrape(port)
            if "citybrain_alert_redis_up 0.0" in text and "citybrain_alert_tx_buffered 0.0" not in text:
                seen_down = text
                break
            time.sleep(0.2)
        time.sleep(2.0)
        r.start()
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert seen_down, "the outage never showed on /metrics"
    assert history(tmp_path / "cut") == history(tmp_path / "peer")
    cut, peer = notifications(r.url), notifications(peer_redis.url)
    assert len(cut) == len(set(cut)), "a notification enqueued twice"
    assert sorted(cut) == sorted(peer)
