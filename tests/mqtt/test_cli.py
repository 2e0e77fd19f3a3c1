"""`citybrain run --source mqtt://...` as a user runs it: a clear error for a bad URL, and the real command
fed by `citybrain publish` against a real mosquitto, stopped with SIGTERM, accounting for every record."""
from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from citybrain.cli import main
from streams.sim import Simulator


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _records_in(port: int) -> int:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return 0
    m = re.search(r'citybrain_records_total\{outcome="in"\} ([0-9.e+]+)', text)
    return int(float(m.group(1))) if m else 0


def test_a_bad_mqtt_url_is_one_clear_line(capsys, tmp_path):
    code = main(["run", "--source", "mqtt://broker:1883", "--headless", "--no-http", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert "--source: MQTT URL 'mqtt://broker:1883' must look like" in err and "Traceback" not in err


def test_run_from_mqtt_counts_every_published_record(city, mosquitto, tmp_path):
    sim = Simulator(city, seed=8)
    recording = tmp_path / "events.jsonl"
    recording.write_bytes(b"".join(sim.jsonl_batches(sim.start_ms + 20 * 60_000, batch_s=60)))
    n = sum(1 for line in recording.read_bytes().splitlines() if line.strip())
    port = _free_port()
    err_log = tmp_path / "run.err"
    with err_log.open("wb") as err, (tmp_path / "run.out").open("wb") as out:
        run = subprocess.Popen([sys.executable, "-m", "citybrain", "run", "--source", f"{mosquitto.url}/city/#", "--headless",
                                "--no-http", "--no-alerts", "--out", str(tmp_path / "out"), "--summary-every", "5m",
                                "--metrics-port", str(port)],
                               stdout=out, stderr=err)
    try:
        deadline = time.monotonic() + 120
        while b"starting the stream" not in err_log.read_bytes():
            assert run.poll() is None, err_log.read_text()[-2000:]
            assert time.monotonic() < deadline, "run did not start"
            time.sleep(0.1)
        time.sleep(1.0)  # subscribed (the persistent session exists) before the sensors speak
        published = subprocess.run([sys.executable, "-m", "citybrain", "publish", str(recording), "--mqtt", mosquitto.url,
                                    "--per-message", "20"], capture_output=True, timeout=300)
        assert published.returncode == 0, published.stderr.decode()[-2000:]
        while _records_in(port) < n:  # the engine's own /metrics, as an operator would watch it
            assert run.poll() is None, err_log.read_text()[-2000:]
            assert time.monotonic() < deadline + 120, f"only {_records_in(port)} of {n} records arrived"
            time.sleep(0.2)
    finally:
        run.send_signal(signal.SIGTERM)
        code = run.wait(timeout=60)
    said = err_log.read_text()
    assert code == 0, said[-2000:]
    m = re.search(r"records in ([\d,]+) = applied ([\d,]+) \+ dead-lettered ([\d,]+) \+ late ([\d,]+)", said)
    assert m, said[-2000:]
    records_in, applied = (int(g.replace(",", "")) for g in m.groups()[:2])
    assert records_in == n and applied == n, said[-1000:]
    assert (tmp_path / "out" / "checkpoint.bin").exists()
    assert (tmp_path / "run.out").read_text().count('"records"') >= 2  # headless summaries every 5 minutes of stream time


def test_replay_refuses_a_live_mqtt_source(capsys, tmp_path):
    code = main(["replay", "mqtt://127.0.0.1:1883/city/#", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "use `citybrain run --source mqtt://" in err
