"""What the Faust tests against a real broker share: ``citybrain worker`` processes, producing a
file to the input topic, reading a topic back, and rows compared as sorted JSON."""
from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TIMEOUT_S = 420  # generous: the machine running the suite may be shared


def norm(value):
    if isinstance(value, float) and math.isnan(value):
        return "NaN"  # NaN != NaN: compare "no data" as a marker
    if isinstance(value, dict):
        return {k: norm(v) for k, v in value.items()}
    if isinstance(value, list):
        return [norm(v) for v in value]
    return value


def table_rows(rows: list[dict]) -> list[str]:
    """Rows as sorted JSON strings: equal tables compare equal whatever the row order."""
    return sorted(json.dumps(norm(r), sort_keys=True, default=str) for r in rows)


def produce(lines: list[bytes], path: Path, broker: str, partitions: int) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    proc = subprocess.run([sys.executable, "-m", "citybrain", "produce", str(path), "--broker", broker, "--partitions", str(partitions),
                           "--block", "50"], cwd=path.parent, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr


class WorkerProcs:
    """``citybrain worker`` processes of one app sharing one --out directory; subclasses start them."""

    def __init__(self, broker: str, out: Path, partitions: int, app: str = "citybrain"):
        self.broker, self.out, self.procs, self.partitions, self.app = broker, out, {}, partitions, app
        self.topics = ("citybrain.vitals", "citybrain.deadletter") if app == "citybrain" else (f"{app}.vitals", f"{app}.deadletter")
        out.mkdir(exist_ok=True)

    def kill(self, i: int) -> None:
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait(timeout=10)

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)

    def logs(self) -> str:
        return "\n".join(f"--- worker{i}\n{(self.out / f'worker{i}.log').read_text()[-2500:]}" for i in self.procs)

    def wait(self, done, what: str) -> dict:
        from streams.faust_state import read_status

        deadline = time.monotonic() + TIMEOUT_S
        status = None
        while time.monotonic() < deadline:
            for i, p in self.procs.items():
                if p.poll() is not None and p.returncode not in (-signal.SIGKILL, 137):
                    pytest.fail(f"worker {i} exited with {p.returncode}:\n{self.logs()}")
            status = read_status(self.out, self.app, self.partitions)
            if done(status):
                return status
            time.sleep(0.3)
        brief = status and {k: status.get(k) for k in ("records_in", "closed_upto", "merged_upto")}
        pytest.fail(f"{what} not reached within {TIMEOUT_S} s: {brief}\n{self.logs()}")


async def read_topic(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes]]:
    """Every message of ``topic`` from the start, once nothing more arrives for ~1 s."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None)
    await consumer.start()
    out, idle = [], 0
    try:
        while idle < 3:
            got = await consumer.getmany(timeout_ms=400, max_records=10_000)
            n = sum(len(v) for v in got.values())
            idle = 0 if n else idle + 1
            out.extend((m.key, m.value) for msgs in got.values() for m in msgs)
    finally:
        await consumer.stop()
    return out
