"""`citybrain run` end to end as a user runs it: headless smoke test, resume without double counting."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl

CLI = [sys.executable, "-m", "citybrain"]
ENV = {**os.environ, "PYTHONHASHSEED": "0"}


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=ENV)


def test_headless_run_prints_vital_signs_and_accounts_for_every_record(tmp_path):
    out = tmp_path / "run"
    p = run("run", "--headless", "--duration", "2h", "--speed", "0", "--out", str(out), "--summary-every", "30m", "--no-alerts")
    assert p.returncode == 0, p.stderr
    summaries = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) >= 3
    last = summaries[-1]
    assert 0 <= last["city"]["tpi"] <= 10 and 0 <= last["city"]["health_index"] <= 100
    r = last["records"]
    assert r["records_in"] > 0 and r["records_in"] == r["applied"] + r["dead_lettered"] + r["late"]
    assert "(ok)" in p.stderr
    district = pl.read_parquet(out / "history" / "district" / "*.parquet")
    # 2 h of 5-minute windows; the last one stays open until the 2-minute lateness has passed
    assert district["window_end_ms"].n_unique() == 23
    assert district["district"].n_unique() >= 4


def test_restart_resumes_without_double_counting(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    common = ["--headless", "--speed", "0", "--no-alerts", "--summary-every", "1h"]
    assert run("run", *common, "--duration", "3h", "--out", str(straight)).returncode == 0
    first = run("run", *common, "--duration", "90m", "--out", str(resumed))
    assert first.returncode == 0, first.stderr
    second = run("run", *common, "--duration", "3h", "--out", str(resumed))
    assert second.returncode == 0, second.stderr

    def table(root: Path, name: str) -> pl.DataFrame:
        return pl.read_parquet(root / "history" / name / "*.parquet").sort(["window_end_ms", "district"])

    a, b = table(straight, "district"), table(resumed, "district")
    assert a["window_end_ms"].n_unique() == 35
    assert b.select("window_end_ms", "district").is_duplicated().sum() == 0, "a window was written twice"
    assert a.drop("name").equals(b.drop("name"), null_equal=True)
    assert "records in" in second.stderr


def test_bad_arguments_are_clear_errors(tmp_path):
    p = run("run", "--headless", "--duration", "soon", "--out", str(tmp_path))
    assert p.returncode == 2 and "duration" in p.stderr and "Traceback" not in p.stderr
    p = run("run", "--city", str(tmp_path / "nowhere"), "--headless", "--out", str(tmp_path))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    p = run("replay", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "does not exist" in p.stderr
    p = subprocess.run([*CLI, "run", "--headless"], capture_output=True, text=True, env={**ENV, "CITYBRAIN_WINDOW_S": "7"}, timeout=60)
    assert p.returncode == 2 and "window_s" in p.stderr


def test_replay_of_a_file_with_bad_lines(tmp_path):
    good = run("simulate", "--out", str(tmp_path / "sim"), "--hours", "1", "--format", "jsonl")
    assert good.returncode == 0, good.stderr
    data = next((tmp_path / "sim").glob("*.jsonl")).read_bytes()
    lines = data.splitlines()
    bad = [b"{oops", b'{"kind":"traffic","sensor_id":"NOBODY","ts_ms":1,"volume_veh":1,"occupancy_pct":1,"speed_kmh":1}', lines[10]]
    f = tmp_path / "mixed.jsonl"
    f.write_bytes(b"\n".join(lines + bad) + b"\n")
    p = run("replay", str(f), "--out", str(tmp_path / "out"))
    assert p.returncode == 0, p.stderr
    assert f"records in {len(lines) + 3:,}" in p.stdout
    assert "ok" in p.stdout
    dead = pl.concat([pl.read_ndjson(x) for x in (tmp_path / "out" / "deadletter").glob("deadletter-*.jsonl")])
    assert sorted(dead["reason_code"].to_list()) == ["duplicate", "malformed", "unknown_sensor"]


def test_ctrl_c_stops_cleanly_and_the_next_run_resumes(tmp_path):
    import signal
    import time

    out = tmp_path / "run"
    proc = subprocess.Popen([*CLI, "run", "--headless", "--speed", "600", "--out", str(out), "--no-alerts", "--summary-every", "15m"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline = time.monotonic() + 120
        first = proc.stdout.readline()  # the first summary: it is running and has closed a window
        assert first.startswith("{"), first
        while time.monotonic() < deadline and not (out / "checkpoint.bin").exists():
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "(ok)" in stderr
    stopped_at = int(stderr.split("stopped at stream time ")[1].split(";")[0])
    again = run("run", "--headless", "--speed", "0", "--duration", "8h", "--out", str(out), "--no-alerts")
    assert again.returncode == 0, again.stderr
    windows = pl.read_parquet(out / "history" / "district" / "*.parquet").select("window_end_ms", "district")
    assert windows.is_duplicated().sum() == 0
    assert windows["window_end_ms"].min() < stopped_at < windows["window_end_ms"].max()
