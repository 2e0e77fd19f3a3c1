"""Sources for the drivers: the built-in simulator and recorded files, as :class:`SourceBatch` streams.

Each source can report its position (``state()``) and resume from it (``load()``), which is what
lets a restarted ``citybrain run`` continue where its last checkpoint stopped.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from brain.city.model import City
from streams.local import SourceBatch

class SimulatorSource:
    """The built-in simulator, ``step_s`` of stream time per batch, forever (``finite`` is False).

    Example:
        >>> from brain.city import demo_city_path, load_city
        >>> source = SimulatorSource(load_city(demo_city_path()), seed=1)
        >>> batch = next(source.batches())
        >>> batch.stream_time_ms - source.start_ms, "traffic" in batch.frames
        (60000, True)
    """

    finite = False

    def __init__(self, city: City, seed: int = 0, start_ms: int | None = None, step_s: int = 60, scenarios="default", **sim_options):
        from streams.sim import Simulator

        self._make = lambda: Simulator(city, seed=seed, start_ms=start_ms, step_s=step_s, scenarios=scenarios, **sim_options)
        self.simulator = self._make()
        self.step_ms = int(step_s * 1000)
        self.position_ms = int(self.simulator.start_ms)

    @property
    def start_ms(self) -> int:
        return int(self.simulator.start_ms)

    def batches(self) -> Iterator[SourceBatch]:
        while True:
            until = self.position_ms + self.step_ms
            for batch in self.simulator.batches(until):
                self.position_ms = int(batch.end_ms)
                yield SourceBatch(stream_time_ms=int(batch.end_ms), frames=batch.frames)
            self.position_ms = until

    def state(self) -> dict:
        """The position as plain data (the simulator is rebuilt from its settings, never unpickled)."""
        return {"position_ms": self.position_ms, "seed": self.simulator.seed, "start_ms": self.start_ms, "step_ms": self.step_ms}

    def load(self, state: dict) -> None:
        """Continue from :meth:`state`: a new simulator with the same settings, run forward (records
        are pure functions of time and seed, so this is the same stream, batch for batch)."""
        mine = {"seed": self.simulator.seed, "start_ms": self.start_ms, "step_ms": self.step_ms}
        theirs = {k: state.get(k) for k in mine} if isinstance(state, dict) else None
        if theirs != mine:
            raise ValueError(f"simulator checkpoint was taken with {theirs}, this run has {mine}")
        position = int(state["position_ms"])
        sim = self._make()
        step_s = self.step_ms // 1000
        for _ in sim.batches(position, batch_s=step_s * max(1, 3600 // step_s)):
            pass
        self.simulator, self.position_ms = sim, position


class FileSource:
    """A recording — JSONL, Parquet, CSV, or a folder written by ``citybrain simulate`` — via the replay reader.

    JSONL arrives as raw whole-line chunks (validated like live input, so bad lines are dead-lettered
    with reasons); Parquet and CSV as per-kind frames merged in event time. ``offset`` counts the JSONL
    bytes handed out (for progress bars); the position saved in a checkpoint is the number of batches
    with the chunk sizes that cut them, so a run resumed with other sizes still starts where it stopped.
    ``fine=True`` cuts small chunks (~minutes of a city's data, not hours), for runs that stop after a
    ``--duration``: the driver can only stop between batches.

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "day.jsonl"
        >>> _ = f.write_bytes(b'{"kind":"noise","sensor_id":"NS-01","ts_ms":0,"laeq_db":55.0}\\n{oops\\n')
        >>> [b.jsonl.count(b"\\n") for b in FileSource(f).batches()]
        [2]
    """

    finite = True

    FINE_CHUNK = (256 << 10, 5_000)  # bytes of JSONL, rows of Parquet/CSV
    COARSE_CHUNK = (4 << 20, 100_000)

    def __init__(self, path: str | Path, fine: bool = False):
        self.path = path
        self.chunk = self.FINE_CHUNK if fine else self.COARSE_CHUNK
        self.replay = self._open(self.chunk)
        self.done = 0
        self.offset = 0

    def _open(self, chunk: tuple[int, int]):
        from streams.sources.replay import ReplayError, ReplaySource

        try:
            return ReplaySource(self.path, chunk_bytes=chunk[0], chunk_rows=chunk[1])
        except ReplayError as exc:
            raise ValueError(str(exc)) from None

    def batches(self) -> Iterator[SourceBatch]:
        for i, item in enumerate(self.replay.batches()):
            if isinstance(item, (bytes, bytearray)):
                self.offset += len(item)
            if i < self.done:
                continue
            self.done = i + 1
            if isinstance(item, (bytes, bytearray)):
                yield SourceBatch(jsonl=bytes(item))
            else:
                yield SourceBatch(frames=item)

    def state(self) -> list[int]:
        return [self.done, *self.chunk]

    def load(self, state: int | list[int]) -> None:
        if isinstance(state, int):  # checkpoints before chunk sizes were kept: the coarse ones
            state = [state, *self.COARSE_CHUNK]
        done, *chunk = (int(v) for v in state)
        if tuple(chunk) != self.chunk:
            self.chunk = tuple(chunk)
            self.replay = self._open(self.chunk)
        self.done = done


def open_file_source(path: str | Path, fine: bool = False) -> FileSource:
    return FileSource(path, fine=fine)
