"""Poison through Kafka: `citybrain produce` and the Faust worker on a real tansu broker keep going
through a line nesting 995 brackets (the worker crash-looped on it, exit 70, 0 records), a line too
long to be a record, a whitespace-only line, two objects on one line, bytes that are not UTF-8 and NUL
bytes; each goes to the dead-letter topic with its reason and the offsets move on."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter

from brain.ingest import MAX_LINE_BYTES
from streams.faust_driver import DEADLETTER_TOPIC, bootstrap_of
from tests.faust.test_distributed import Workers, _redis_url
from tests.faust.workers import read_topic

GOOD = b'{"kind":"noise","sensor_id":"NS-01","ts_ms":%d,"laeq_db":55.0}'


def test_poison_lines_reach_the_dead_letter_topic_and_the_worker_goes_on(broker, city, tmp_path, redis_socket):
    t0 = 1_780_243_200_000
    good = [GOOD % (t0 + i * 60_000) for i in range(20)]
    poison = {
        "too_deep": good[0][:-1] + b',"x":' + b"[" * 995 + b"]" * 995 + b"}",
        "malformed": good[1] + good[2],  # two objects on one line
        "malformed_utf8": good[3].replace(b"NS-01", b"NS-\xff\xfe"),
        "malformed_nul": good[4][:10] + b"\x00" + good[4][10:],
    }
    huge = good[5][:-1] + b',"pad":"' + b"y" * (MAX_LINE_BYTES + 10) + b'"}'
    lines = good[6:] + list(poison.values()) + [b"\r", b"   ", huge]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    proc = subprocess.run([sys.executable, "-m", "citybrain", "produce", str(path), "--broker", broker], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text
    assert "sent 18 records" in text and "1 lines too long" in text and "Traceback" not in text
    workers = Workers(broker, tmp_path / "worker", _redis_url(redis_socket, 9), partitions=1)
    try:
        workers.start(0)
        c = workers.wait(lambda s: s["records_in"] >= 18, "18 records in")["counters"]
        assert c["records_in"] == 18 == c["applied"] + c["dead_lettered"] + c.get("late", 0)
        assert workers.procs[0].poll() is None, "the worker stopped"
    finally:
        workers.stop_all()
    dead = asyncio.run(read_topic(bootstrap_of(broker), DEADLETTER_TOPIC))
    reasons = Counter(json.loads(v)["reason_code"] for _, v in dead)
    assert reasons == {"too_deep": 1, "malformed": 3, "too_large": 1}, reasons
