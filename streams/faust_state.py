"""State of the distributed engine's stages, checkpointed per input partition (and one for the merge).

The state of a stage belongs to its partition, not to the worker running it: partition ``p`` of the
input topic is checkpointed in ``<out>/faust-<app>-p<p>.ckpt``, the merge stage (the one partition
of the partials topic) in ``<out>/faust-<app>-merge.ckpt``. Whichever worker Faust assigns the
partition to loads that file, so state moves with its partition when a worker joins or dies (the
``--out`` directory is shared by the workers: one machine, or a shared volume). A worker that holds
a partition's state notices when another worker has written the file since (a rebalance gave the
partition away and back) and reloads it before going on.

Each file holds the stage's snapshot and the last input offset applied; a worker killed between its
save and Faust's offset commit is given those records again and skips every offset at or below the
saved one, so state is applied exactly once. Next to each checkpoint a small JSON status file
(``.json``) says how far the stage is (records in, ticks closed or merged): for operators, tests and
benches, without decoding a checkpoint.

Example:
    >>> import tempfile
    >>> from brain.city import demo_city_path, load_city
    >>> from streams.faust_stages import PartitionPipeline
    >>> out = tempfile.mkdtemp()
    >>> state = StageState(PartitionPipeline(load_city(demo_city_path())), stage_path(out, "demo", 0))
    >>> state.load(), state.offset
    (False, -1)
    >>> state.offset = 41; state.save(); state.stale()
    False
    >>> again = StageState(PartitionPipeline(load_city(demo_city_path())), stage_path(out, "demo", 0))
    >>> again.load(), again.offset, read_status(out, "demo", 1)["records_in"]
    (True, 41, 0)
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from streams.checkpoint_file import CheckpointError, CheckpointFile

STAGE_VERSION = 3  # 3: per-partition stages and a merge stage; 2: one pipeline per worker


def stage_path(out_dir: str | os.PathLike, app_id: str, partition: int | str) -> Path:
    """Checkpoint of input partition ``partition`` (an int) or of the merge stage (``"merge"``)."""
    name = f"p{partition}" if isinstance(partition, int) else str(partition)
    return Path(out_dir) / f"faust-{app_id}-{name}.ckpt"


class StageState:
    """One stage's pipeline, its last applied input offset, and its checkpoint file (see module)."""

    def __init__(self, pipeline, path: Path, parts: dict | None = None):
        self.pipeline = pipeline
        # Participants outside the pipeline (the merge's alert service: the alert transactions Redis
        # does not hold yet) whose ``snapshot()``/``restore()`` ride in the same checkpoint.
        self.parts = dict(parts or {})
        self.path = Path(path)
        self.file = CheckpointFile(self.path)
        self.offset = -1
        self.batches = 0
        self.last_blob: bytes | None = None  # the pipeline as of the last save (what a failed batch rolls back to)
        self._stamp: tuple | None = None

    def _file_stamp(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def stale(self) -> bool:
        """True when someone else wrote this partition's checkpoint since we last saved or loaded it."""
        return self._file_stamp() != self._stamp

    def load(self) -> bool:
        try:
            blob = self.file.load()
        except CheckpointError as exc:  # torn, foreign or pickled: say which, don't guess
            raise ValueError(f"checkpoint {self.path} is unreadable ({exc}); delete it to start fresh") from None
        self._stamp = self._file_stamp()
        if blob is None:
            return False
        if not isinstance(blob, dict) or blob.get("version") != STAGE_VERSION:
            raise ValueError(f"checkpoint {self.path} has another format; delete it to start fresh")
        self.pipeline.restore(blob["snapshot"])
        for name, part_blob in blob.get("parts", {}).items():
            if name in self.parts:
                self.parts[name].restore(part_blob)
        self.offset = int(blob["offset"])
        self.last_blob = blob["snapshot"]
        return True

    def save(self, status: dict | None = None) -> None:
        self.file.save(self._state())
        self._saved(status)

    async def save_async(self, status: dict | None = None) -> None:
        """:meth:`save` with the file written (and fsynced) in a thread: the snapshot is taken
        here, so the stage may change as soon as this returns; meanwhile the event loop serves the
        worker's other agents (a 50k-sensor merge checkpoint is hundreds of MB: written in the loop
        it stalled every partition's batches)."""
        import asyncio

        await asyncio.to_thread(self.file.save, self._state())
        self._saved(status)

    def _state(self) -> dict:
        self.last_blob = self.pipeline.snapshot()
        return {"version": STAGE_VERSION, "snapshot": self.last_blob, "offset": self.offset,
                "parts": {name: part.snapshot() for name, part in self.parts.items()}}

    def _saved(self, status: dict | None) -> None:
        self._stamp = self._file_stamp()
        c = self.pipeline.counters
        info = {"offset": self.offset, "records_in": c["records_in"], "counters": dict(c), **(status or {})}
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(info))
        os.replace(tmp, self.path.with_suffix(".json"))


def read_status(out_dir: str | os.PathLike, app_id: str, partitions: int) -> dict:
    """How far the stages are, from their status files: records taken in (all partitions), the
    counters summed, each partition's newest closed tick and the merge stage's newest merged tick;
    ``merged_all`` once the merge has merged every tick all partitions closed."""
    total: dict[str, int] = {}
    closed = []
    for p in range(partitions):
        path = stage_path(out_dir, app_id, p).with_suffix(".json")
        try:
            info = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            closed.append(None)
            continue
        for k, v in info["counters"].items():
            total[k] = total.get(k, 0) + v
        closed.append(info.get("closed_upto"))
    try:
        merge = json.loads(stage_path(out_dir, app_id, "merge").with_suffix(".json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        merge = {}
    merged = merge.get("merged_upto")
    ready = None not in closed and merged is not None and merged >= min(closed)
    return {"records_in": total.get("records_in", 0), "counters": total, "closed_upto": closed, "merged_upto": merged,
            "merged_all": bool(ready), "merge": merge}
