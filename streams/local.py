"""The ``local`` driver: the whole topology in one asyncio process (the embedded default).

A source yields batches (per-kind frames or raw JSON lines, plus the source's stream time);
:class:`brain.pipeline.CityPipeline` processes each; closed windows go to the window handlers
(history, alerts, anomaly, live view), dead letters and late records to their files. State is
checkpointed every ``checkpoint_every_s`` wall seconds and on a clean stop: pipeline snapshot,
source position and sink sequence numbers in one file (:mod:`streams.checkpoint_file`: data only,
checksummed, fsynced, replaced atomically, the previous good one kept). History and dead
letters are written only at checkpoints, and a restart first removes any written after its
checkpoint (a crash between the two), so it resumes exactly where the last checkpoint left off —
no double counting, nothing lost. A stop (SIGTERM, Ctrl-C) finishes the batch already read,
checkpoints, then returns.

An unexpected exception in the pipeline does not stop the engine: the pipeline is put back as it
was before that batch (the snapshot of the last checkpoint, then the batches since replayed: no
cost on the happy path), the batch's records are dead-lettered with reason ``unprocessable``
(counted in, so ``records_in == applied + dead + late`` still holds), and the next batch goes on.
"""
from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import msgspec
import polars as pl

from brain.ingest import DEAD_SCHEMA
from brain.pipeline import CityPipeline, StepResult, WindowResult
from streams.checkpoint_file import CheckpointError, CheckpointFile
from streams.sinks.history import DeadLetterFile, ParquetHistory

log = logging.getLogger("citybrain.local")

CHECKPOINT_VERSION = 2  # 2: data-only checkpoint file (streams.checkpoint_file), history rolled back to it


@dataclass
class SourceBatch:
    """One batch from a source: ``frames`` (per kind) or ``jsonl`` bytes; ``stream_time_ms`` is the
    source clock at the end of the batch (it advances the watermark even when no record came)."""

    stream_time_ms: int | None = None
    frames: dict[str, pl.DataFrame] | None = None
    jsonl: bytes | None = None


class Source(Protocol):
    def batches(self) -> Iterator[SourceBatch]: ...

    def state(self) -> Any: ...

    def load(self, state: Any) -> None: ...

    @property
    def finite(self) -> bool: ...


WindowHandler = Callable[[WindowResult], Any]


@dataclass
class DriverStats:
    batches: int = 0
    windows: int = 0
    wall_s: float = 0.0
    stream_start_ms: int | None = None
    stream_time_ms: int | None = None
    last_checkpoint_wall: float = 0.0
    checkpoints: int = 0
    unprocessable_batches: int = 0  # batches the pipeline failed on (their records dead-lettered)
    recent: list[WindowResult] = field(default_factory=list)


def _batch_records(batch: SourceBatch) -> list[str]:
    """A batch's records as text, one per record (as the pipeline counts them: blank lines are none)."""
    if batch.jsonl is not None:
        return [line[:2000].decode("utf-8", "replace") for line in batch.jsonl.splitlines() if line.strip()]
    out = []
    for kind, frame in (batch.frames or {}).items():
        for row in frame.iter_rows(named=True):
            out.append(msgspec.json.encode({"kind": kind, **row}).decode()[:2000])
    return out


async def _source_batches(source: Source):
    """A source's batches, whether it iterates them (files, simulator) or awaits them (``abatches``: MQTT)."""
    if hasattr(source, "abatches"):
        async with contextlib.aclosing(source.abatches()) as batches:  # closed with ours: it stops its client
            async for batch in batches:
                yield batch
    else:
        for batch in source.batches():
            yield batch


#: The driver's checkpoint file (the name this module has always exported).
CheckpointStore = CheckpointFile


class LocalDriver:
    """Runs ``pipeline`` over ``source`` (see module docstring).

    ``speed`` is stream seconds per wall second (0 = as fast as possible); ``until_ms`` stops at
    that stream time (with ``duration_ms`` instead, that long after the first window's start, for a
    source that does not know its start); ``out_dir`` receives ``history/``, ``deadletter/`` and ``checkpoint.bin``.

    Example (half an hour of the simulated demo city, as fast as possible):
        >>> import asyncio, tempfile
        >>> from brain.city import demo_city_path, load_city
        >>> from streams.feeds import SimulatorSource
        >>> city = load_city(demo_city_path())
        >>> source = SimulatorSource(city, seed=1)
        >>> driver = LocalDriver(CityPipeline(city), source, tempfile.mkdtemp(), until_ms=source.start_ms + 1_800_000)
        >>> stats = asyncio.run(driver.run())
        >>> stats.windows, driver.pipeline.invariant_holds(), driver.checkpoints.path.exists()
        (5, True, True)
    """

    def __init__(
        self,
        pipeline: CityPipeline,
        source: Source,
        out_dir: str | os.PathLike,
        *,
        speed: float = 0.0,
        until_ms: int | None = None,
        duration_ms: int | None = None,
        checkpoint_every_s: float = 10.0,
        window_handlers: list[WindowHandler] | None = None,
        batch_handlers: list[Callable[[StepResult], Any]] | None = None,
        source_key: str = "",
    ):
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self.pipeline = pipeline
        self.source = source
        self.out_dir = Path(out_dir)
        self.speed = float(speed)
        self.until_ms = until_ms
        self.duration_ms = duration_ms  # with no until_ms: stop this long after the first window's start
        self.checkpoint_every_s = float(checkpoint_every_s)
        self.window_handlers = list(window_handlers or [])
        self.batch_handlers = list(batch_handlers or [])
        self.history = ParquetHistory(self.out_dir / "history")
        self.dead = DeadLetterFile(self.out_dir / "deadletter", "deadletter")
        self.late = DeadLetterFile(self.out_dir / "deadletter", "late")
        self.checkpoints = CheckpointStore(self.out_dir / "checkpoint.bin")
        self.source_key = source_key
        self.stats = DriverStats()
        self._stop = asyncio.Event()
        self.resumed = False
        self.participants: dict[str, Any] = {}  # stateful parts outside the pipeline (the alert service)
        self._resumed_parts: dict[str, bytes] = {}
        # Where a failed batch rolls the pipeline back to: the last checkpoint's snapshot, then the batches since.
        self._rollback: bytes | None = None
        self._since_rollback: list[tuple[bytes | None, dict | None, int | None]] = []

    # --- checkpoints ------------------------------------------------------------------------------
    def resume(self) -> bool:
        """Restore from the checkpoint in ``out_dir`` if there is one for the same source."""
        try:
            blob = self.checkpoints.load()
        except CheckpointError as exc:
            raise ValueError(f"{exc}; start afresh with --fresh (history is then rewritten)") from None
        if blob is None:
            # Output written after the last checkpoint is not committed: it is recomputed, not kept.
            self.history.load(None)
            self.dead.load(None)
            self.late.load(None)
            return False
        if not isinstance(blob, dict) or blob.get("version") != CHECKPOINT_VERSION or blob.get("source_key") != self.source_key:
            raise ValueError(
                f"{self.checkpoints.path} belongs to another run (source {blob.get('source_key')!r}); "
                "use another --out directory or --fresh"
            )
        self.pipeline.restore(blob["pipeline"])
        self.source.load(blob["source"])
        self.history.load(blob["history"])
        self.dead.load(blob["dead"])
        self.late.load(blob["late"])
        self.stats.stream_time_ms = blob.get("stream_time_ms")
        self._resumed_parts = dict(blob.get("parts") or {})
        self.resumed = True
        return True

    def attach(self, name: str, part: Any) -> None:
        """A stateful participant outside the pipeline (the alert service): its ``snapshot() -> bytes`` goes
        into every checkpoint, ``restore(bytes)`` gets the resumed checkpoint's (when there is one), and its
        ``async on_checkpoint()``, if any, runs after each checkpoint is on disk."""
        self.participants[name] = part
        if name in self._resumed_parts:
            part.restore(self._resumed_parts[name])

    async def _checkpoint(self) -> None:
        self.checkpoint()
        for part in self.participants.values():
            hook = getattr(part, "on_checkpoint", None)
            if hook is not None:
                await hook()

    def checkpoint(self) -> None:
        # Sinks first: if we die between the two, the next start recomputes from the old
        # checkpoint and rewrites the same files (same names), so nothing is doubled.
        self.history.flush()
        self.dead.flush()
        self.late.flush()
        self.checkpoints.save(
            {
                "version": CHECKPOINT_VERSION,
                "source_key": self.source_key,
                "pipeline": self._rollback_point(),
                "source": self.source.state(),
                "history": self.history.state(),
                "dead": self.dead.state(),
                "late": self.late.state(),
                "stream_time_ms": self.stats.stream_time_ms,
                "parts": {name: part.snapshot() for name, part in self.participants.items()},
            }
        )
        self.stats.checkpoints += 1
        self.stats.last_checkpoint_wall = time.monotonic()
        log.info("checkpoint", extra={"fields": {"stream_time_ms": self.stats.stream_time_ms}})

    # --- running ----------------------------------------------------------------------------------
    def _rollback_point(self) -> bytes:
        """The pipeline's snapshot, kept as the point a failed batch rolls back to."""
        self._rollback, self._since_rollback = self.pipeline.snapshot(), []
        return self._rollback

    def _step(self, jsonl: bytes | None, frames: dict | None, stream_time_ms: int | None) -> StepResult:
        """The pipeline's work on one batch: its records, then the source's clock (which moves
        stream time on even through a quiet spell)."""
        result = self.pipeline.ingest_jsonl(jsonl) if jsonl is not None else self.pipeline.ingest_frames(frames or {})
        if stream_time_ms is not None:
            result.windows.extend(self.pipeline.advance_to(stream_time_ms).windows)
        return result

    def _process(self, batch: SourceBatch) -> StepResult:
        """One batch through the pipeline; a batch the pipeline fails on is refused whole (see module docstring)."""
        step = (batch.jsonl, batch.frames, batch.stream_time_ms)
        if self._rollback is None:
            self._rollback_point()
        try:
            result = self._step(*step)
        except Exception as exc:  # noqa: BLE001 - whatever breaks inside, the engine goes on without this batch
            return self._refuse(batch, exc)
        self._since_rollback.append(step)
        return result

    def _refuse(self, batch: SourceBatch, exc: Exception) -> StepResult:
        self.pipeline.restore(self._rollback)
        for step in self._since_rollback:  # they succeeded before: the same state again (their output is already out)
            self._step(*step)
        reason = f"the pipeline failed on this record's batch ({type(exc).__name__}: {exc})"[:500]
        raws = _batch_records(batch)
        dead = pl.DataFrame({"reason_code": ["unprocessable"] * len(raws), "reason": [reason] * len(raws), "raw": raws},
                            schema=DEAD_SCHEMA)
        c = self.pipeline.counters
        for key in ("records_in", "dead_lettered", "dead.unprocessable"):
            c[key] += len(raws)
        self.stats.unprocessable_batches += 1
        log.error("batch refused: the pipeline failed on it", exc_info=exc,
                  extra={"fields": {"records": len(raws), "error": repr(exc)[:300]}})
        return StepResult([], dead, pl.DataFrame(schema=DEAD_SCHEMA), len(raws))

    def stop(self) -> None:
        self._stop.set()

    async def _emit(self, result: StepResult) -> None:
        self.dead.add(result.dead)
        self.late.add(result.late)
        written: set[int] = set()
        for window in result.windows:
            batch = getattr(window, "batch", None)
            if batch is None:
                self.history.add(window.window_end_ms, window.vitals)
            elif id(batch) not in written:  # a batch's stacked tables go to history in one piece
                written.add(id(batch))
                self.history.add_stacked(batch.ends[0], batch.ends[-1], batch.vitals)
            self.stats.windows += 1
            if self.until_ms is None and self.duration_ms is not None:
                self.until_ms = window.window_end_ms - self.pipeline.config.window_ms + self.duration_ms
            for handler in self.window_handlers:
                out = handler(window)
                if inspect.isawaitable(out):
                    await out
        for handler in self.batch_handlers:
            out = handler(result)
            if inspect.isawaitable(out):
                await out

    async def run(self) -> DriverStats:
        start_wall = time.monotonic()
        self.stats.last_checkpoint_wall = start_wall
        pace_origin: tuple[float, int] | None = None
        exhausted = True
        async for batch in (batches := _source_batches(self.source)):
            result = self._process(batch)
            if batch.stream_time_ms is None:
                batch.stream_time_ms = self.pipeline.clock.max_ts_ms or 0
            self.stats.batches += 1
            self.stats.stream_time_ms = batch.stream_time_ms
            if self.stats.stream_start_ms is None:
                self.stats.stream_start_ms = batch.stream_time_ms
            await self._emit(result)
            if self.speed > 0:
                if pace_origin is None:
                    pace_origin = (time.monotonic(), batch.stream_time_ms)
                due = pace_origin[0] + (batch.stream_time_ms - pace_origin[1]) / 1000.0 / self.speed
                delay = due - time.monotonic()
                if delay > 0:
                    try:
                        await asyncio.wait_for(self._stop.wait(), timeout=delay)
                    except asyncio.TimeoutError:
                        pass
                else:
                    await asyncio.sleep(0)  # behind schedule: still let signal handlers and servers run
            else:
                await asyncio.sleep(0)
            if time.monotonic() - self.stats.last_checkpoint_wall >= self.checkpoint_every_s:
                await self._checkpoint()
            if self.until_ms is not None and batch.stream_time_ms >= self.until_ms:
                exhausted = False
                break
            if self._stop.is_set():  # a clean stop: the batch already read is processed, then checkpointed
                exhausted = False
                break
        await batches.aclose()  # a live source (MQTT) stops receiving before the checkpoint below
        if exhausted and self.source.finite:
            await self._emit(self.pipeline.flush())
        await self._checkpoint()
        self.stats.wall_s = time.monotonic() - start_wall
        return self.stats
