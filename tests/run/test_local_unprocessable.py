"""The local driver survives an unexpected exception in the pipeline: a failure injected in a real
window operator (the sensor-fault operator, half-way through a tick, after it has changed its own
state) refuses that batch's records as dead letters (``unprocessable``), and the engine goes on.
Compared with a peer run that never saw that batch: identical history, identical accounting plus
the refused records — so the rollback left no trace of the failed batch in any state."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from brain.pipeline import CityPipeline
from streams.fault_operator import fault_operator
from streams.local import LocalDriver, SourceBatch
from tests.run.test_exact_restart import history

CHUNK = 64 * 1024


class Chunks:
    """A finite source of JSONL chunks; ``skip`` leaves one out (the peer), ``on_yield(i)`` runs before chunk i."""

    finite = True

    def __init__(self, chunks: list[bytes], skip: int | None = None, on_yield=None):
        self.chunks, self.skip, self.on_yield, self.position = chunks, skip, on_yield, 0

    def batches(self):
        while self.position < len(self.chunks):
            i = self.position
            self.position += 1
            if i == self.skip:
                continue
            if self.on_yield is not None:
                self.on_yield(i)
            yield SourceBatch(jsonl=self.chunks[i])

    def state(self):
        return self.position

    def load(self, state):
        self.position = state


@pytest.fixture(scope="module")
def chunks(city) -> list[bytes]:
    from streams.sim import Simulator

    sim = Simulator(city, seed=5)
    data = b"".join(sim.jsonl_batches(sim.start_ms + 2 * 3_600_000, batch_s=600))
    out, start = [], 0
    while start < len(data):  # whole lines, ~64 KB each (as the file reader cuts them)
        end = data.find(b"\n", start + CHUNK)
        end = len(data) if end < 0 else end + 1
        out.append(data[start:end])
        start = end
    return out


def _run(city, source, out: Path, checkpoint_every_s: float, inject=None):
    op = fault_operator(city)
    if inject is not None:
        inject(op)
    driver = LocalDriver(CityPipeline(city, window_operators=[op]), source, out, checkpoint_every_s=checkpoint_every_s)
    asyncio.run(driver.run())
    return driver


@pytest.mark.parametrize("checkpoint_every_s", [0.0, 1e9], ids=["checkpoint-each-batch", "replay-since-start"])
def test_a_failing_operator_refuses_its_batch_and_the_engine_goes_on(city, chunks, tmp_path, checkpoint_every_s):
    armed, failed_at, current = [False], [], [0]

    def on_yield(i):
        current[0] = i
        if i == len(chunks) // 2:
            armed[0] = True  # the next operator call fails, whichever batch closes a tick first from here

    def inject(op):
        real = op._probe_speed

        def probe_speed(batch, end):  # called mid-tick: the traffic family's state has already moved
            if armed[0]:
                armed[0] = False
                failed_at.append(current[0])
                raise RuntimeError("injected fault in the sensor-fault operator")
            return real(batch, end)

        op._probe_speed = probe_speed

    ours = _run(city, Chunks(chunks, on_yield=on_yield), tmp_path / "ours", checkpoint_every_s, inject)
    assert len(failed_at) == 1, "the fault was never injected"
    k = failed_at[0]
    peer = _run(city, Chunks(chunks, skip=k), tmp_path / "peer", checkpoint_every_s)

    refused = [line for line in chunks[k].splitlines() if line.strip()]
    c, p = ours.pipeline.counters, peer.pipeline.counters
    assert ours.stats.unprocessable_batches == 1
    assert c["dead.unprocessable"] == len(refused) > 0
    assert c["records_in"] == p["records_in"] + len(refused)
    assert c["applied"] == p["applied"] and c["late"] == p["late"]
    assert ours.pipeline.invariant_holds()
    assert any("unprocessable" in problem for problem in ours.pipeline.problems())
    # The engine went on: every batch after the failed one was processed, every tick closed.
    assert ours.stats.batches == len(chunks) and ours.stats.windows == peer.stats.windows
    assert history(tmp_path / "ours") == history(tmp_path / "peer")
    letters = [json.loads(line) for f in sorted((tmp_path / "ours" / "deadletter").glob("deadletter-*.jsonl"))
               for line in f.read_text().splitlines()]
    unprocessable = [d for d in letters if d["reason_code"] == "unprocessable"]
    assert [d["raw"] for d in unprocessable] == [line.decode() for line in refused]
    assert "injected fault" in unprocessable[0]["reason"]
