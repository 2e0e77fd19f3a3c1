"""The two stages of the distributed engine: per partition, then merged (no Kafka or Faust in here).

:class:`PartitionPipeline` is the :class:`brain.pipeline.CityPipeline` of one input partition: it
validates, judges event time and duplicates, and adds readings to the per-sensor windows of the
sensors whose records land on that partition (key = ``sensor_id``), exactly as the local driver
does. When its own watermark passes a tick it does not build tables: it ships the closed windows of
its sensors — sparse, only the sensors with readings — as a :class:`Partial`, together with the
lifecycle updates (grid cases, incidents, outages) it applied, whose entities span sensors.

:class:`MergePipeline` is a ``CityPipeline`` whose windows are filled from the partials of every
partition (:class:`MergedWindows`: a sensor lives on one partition, so its sums, counts and maxima
are copied, never added across partitions — bit-identical to the local driver's). A tick closes
when every partition has closed it (the merged watermark is the minimum of the partitions'); then
the pipeline's own tick code builds the segment, district and city tables, vital signs and window
operators (anomaly scores, sensor faults, green-wave plans) — the same code as the local driver.

Repeats are harmless: a partition re-sending ticks after a crash (its checkpoint is older than what
it had already sent) is recognised by tick end and dropped; lifecycle updates are idempotent.

Example (one stretch split over two partitions by sensor gives the local driver's district table):
    >>> from brain.city import demo_city_path, load_city
    >>> from brain.pipeline import CityPipeline
    >>> from streams.sim import Simulator
    >>> city = load_city(demo_city_path())
    >>> lines = [l for b in Simulator(city, seed=3).jsonl_batches(Simulator(city, seed=3).start_ms + 1_800_000, batch_s=60)
    ...          for l in b.split(b"\\n") if l]
    >>> local = [w for b in [b"\\n".join(lines)] for w in CityPipeline(city).ingest_jsonl(b).windows]
    >>> parts = [PartitionPipeline(city, partition=p) for p in (0, 1)]
    >>> merge = MergePipeline(city, partitions=2)
    >>> merged = []
    >>> for p, pipe in enumerate(parts):
    ...     _ = pipe.ingest_jsonl(b"\\n".join(l for l in lines if hash_partition(l, 2) == p))
    ...     merged += [w for partial in pipe.take_partials() for m in partial_pieces(partial, 64 << 10) for w in merge.add_piece(m)]
    >>> [w.window_end_ms for w in merged] == [w.window_end_ms for w in local]
    True
    >>> merged[-1].vitals["district"].equals(local[-1].vitals["district"])
    True
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from brain import checkpoint, series
from brain.pipeline import TICKS_PER_PASS, CityPipeline, WindowResult
from brain.windows import ClosedWindow

PARTIAL_VERSION = 1


@dataclass
class Partial:
    """What one partition sends the merge stage after a batch: the ticks it closed (``ends``) with
    its sensors' closed windows (``windows[kind][end] = (keys, sums, counts, maxs)``, rows of active
    keys only), the newest time per sensor (``seen``), the air hours it closed, the lifecycle rows it
    applied, and its watermark."""

    partition: int
    ends: list[int]
    watermark_ms: int | None
    windows: dict[str, dict[int, tuple]] = field(default_factory=dict)
    seen: dict[int, tuple] = field(default_factory=dict)
    air: dict[int, tuple] = field(default_factory=dict)
    lifecycle: dict[str, pl.DataFrame] = field(default_factory=dict)
    #: The partition has nothing to read and has closed what its records cover (streams.faust_read):
    #: the merged watermark leaves it out until it sends ticks again.
    idle: bool = False

    @property
    def key(self) -> bytes:
        """Kafka key: partition and last tick end (the merge topic is keyed by window)."""
        return f"{self.partition}:{self.ends[-1] if self.ends else ('idle' if self.idle else 'updates')}".encode()


def _sparse(w: ClosedWindow) -> tuple:
    keys = w.active()
    return keys.astype(np.int64), w.sums[keys], w.counts[keys], w.maxs[keys]


def encode_partial(p: Partial) -> bytes:
    """Bytes of a :class:`Partial` (brain.checkpoint's data-only format: no pickle on the wire)."""
    def table(d):
        return {str(end): list(parts) for end, parts in d.items()}

    return checkpoint.encode({"version": PARTIAL_VERSION, "partition": p.partition, "ends": p.ends, "watermark_ms": p.watermark_ms,
                              "windows": {k: table(v) for k, v in p.windows.items()}, "seen": table(p.seen), "air": table(p.air),
                              "lifecycle": dict(p.lifecycle), "idle": bool(p.idle)})


def decode_partial(blob: bytes) -> Partial:
    """The :class:`Partial` of :func:`encode_partial`'s bytes (``ValueError`` for anything else)."""
    state = checkpoint.decode(blob)
    if not isinstance(state, dict) or state.get("version") != PARTIAL_VERSION:
        raise ValueError("not a partial of this CityBrain version")

    def table(d):
        return {int(end): tuple(parts) for end, parts in d.items()}

    return Partial(int(state["partition"]), [int(e) for e in state["ends"]], state["watermark_ms"],
                   {k: table(v) for k, v in state["windows"].items()}, table(state["seen"]), table(state["air"]), dict(state["lifecycle"]),
                   bool(state.get("idle", False)))


#: A piece of a partial on the partials topic: this header, then up to ``PIECE_BYTES`` of its bytes.
PIECE_HEADER = struct.Struct("<4sIII")  # magic, partition, piece index, piece count
PIECE_MAGIC = b"cbP1"
#: Half of Kafka's default 1 MB message limit: a day of ticks read at once, or one tick of a big
#: city, goes as several messages, reassembled by the merge (no broker or client limit to raise).
PIECE_BYTES = 512 << 10


def partial_pieces(part: Partial, max_bytes: int = PIECE_BYTES) -> list[bytes]:
    """The messages carrying one :class:`Partial`: its bytes cut into pieces of at most
    ``max_bytes``, each behind a :data:`PIECE_HEADER` (partition, index, count); see
    :meth:`MergePipeline.add_piece`.

    >>> part = Partial(1, [300_000], 299_000)
    >>> pieces = partial_pieces(part, max_bytes=16)
    >>> [PIECE_HEADER.unpack_from(m)[1:] for m in pieces][:2], len(pieces) == -(-len(encode_partial(part)) // 16)
    ([(1, 0, 6), (1, 1, 6)], True)
    """
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
    blob = encode_partial(part)
    n = max(1, -(-len(blob) // max_bytes))
    return [PIECE_HEADER.pack(PIECE_MAGIC, part.partition, i, n) + blob[i * max_bytes:(i + 1) * max_bytes] for i in range(n)]


def hash_partition(line: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a record keyed by its ``sensor_id``
    (murmur2, as the Java client and aiokafka compute it); unreadable lines go to partition 0.

    >>> hash_partition(b'{"sensor_id":"N1"}', 1), hash_partition(b"nonsense", 4)
    (0, 0)
    """
    from aiokafka.partitioner import murmur2

    from streams.faust_driver import record_key

    key = record_key(line)
    return 0 if key is None else (murmur2(key) & 0x7FFFFFFF) % partitions


class PartitionPipeline(CityPipeline):
    """The per-partition stage (see the module docstring): closes its sensors' windows on its own
    watermark and keeps them as :class:`Partial` messages until :meth:`take_partials`."""

    def __init__(self, city, config=None, *, partition: int = 0):
        super().__init__(city, config, vitals_fn=lambda *a: {})
        self.partition = int(partition)
        self._pending: list[Partial] = []
        self._lifecycle_rows: dict[str, list[pl.DataFrame]] = {}

    def _apply(self, kind, cols, rows):
        if kind not in self.lifecycle:
            return super()._apply(kind, cols, rows)
        # Entities (a case, an incident) span sensors, hence partitions: the merge stage applies them.
        at = None if rows is None else np.flatnonzero(rows)
        self._lifecycle_rows.setdefault(kind, []).append(cols.frame if at is None else series.take_rows(cols.frame, at))
        ts, idx = cols.int64("ts_ms"), cols.sensor_idx
        return (ts, idx) if at is None else (ts[at], idx[at])

    def _close_stack(self, ends: list[int]) -> list[WindowResult]:
        upto, wanted = ends[-1], set(ends)
        part = Partial(self.partition, list(ends), self.clock.watermark_ms)
        for kind, tw in self.windows.items():
            got = {c.end_ms: _sparse(c) for c in tw.close(upto) if c.end_ms in wanted}
            if got:
                part.windows[kind] = got
        part.seen = {c.end_ms: _sparse(c) for c in self.seen.close(upto) if c.end_ms in wanted}
        part.air = {c.end_ms: _sparse(c) for c in self.air.close(upto)}
        # The lifecycle rows read before these ticks closed ride with them, so the merge holds them
        # (StateAsOf) before it closes the ticks: each tick sees the rows up to its end, as locally.
        part.lifecycle = self._take_lifecycle_rows()
        self._pending.append(part)
        self.counters["ticks_closed"] += len(ends)
        return []

    @property
    def closed_upto(self) -> int | None:
        """The newest tick end this partition has closed (None before its first)."""
        return None if not self.counters["ticks_closed"] else self.next_tick_end_ms - self.config.window_ms

    def snapshot(self) -> bytes:
        # Partials not yet taken are state too: a batch rolled back (a poison line) keeps those of
        # the lines before it.
        rows = {k: pl.concat(v, how="vertical_relaxed") for k, v in self._lifecycle_rows.items()}
        return checkpoint.encode({"pipeline": super().snapshot(), "pending": [encode_partial(p) for p in self._pending], "lifecycle_rows": rows})

    def restore(self, blob: bytes) -> None:
        state = checkpoint.decode(blob)
        if not isinstance(state, dict) or "pending" not in state:
            raise ValueError("not the state of a partition stage")
        super().restore(state["pipeline"])
        self._pending = [decode_partial(b) for b in state["pending"]]
        self._lifecycle_rows = {k: [v] for k, v in state["lifecycle_rows"].items()}

    def _take_lifecycle_rows(self) -> dict[str, pl.DataFrame]:
        rows = {k: pl.concat(v, how="vertical_relaxed") for k, v in self._lifecycle_rows.items()}
        self._lifecycle_rows = {}
        return rows

    def take_partials(self) -> list[Partial]:
        """The partials of everything processed since the last call, in order; lifecycle rows read
        after the last tick closed come last, in a partial of their own (no ticks)."""
        out, self._pending = self._pending, []
        if self._lifecycle_rows:
            out.append(Partial(self.partition, [], self.clock.watermark_ms, lifecycle=self._take_lifecycle_rows()))
        return out


class MergedWindows:
    """Stands in for a :class:`brain.windows.TumblingWindows` in the merge stage: holds the sparse
    closed windows received from partitions per window end, and ``close(upto)`` gives them back as
    dense :class:`ClosedWindow` s, as the local driver's windows would."""

    def __init__(self, n_keys: int, width_ms: int, fields: list[str]):
        self.n_keys, self.width_ms, self.fields = int(n_keys), int(width_ms), list(fields)
        self._parts: dict[int, list[tuple]] = {}

    def add(self, end_ms: int, parts: tuple) -> None:
        self._parts.setdefault(int(end_ms), []).append(tuple(parts))

    def close(self, upto_ms: int) -> list[ClosedWindow]:
        out = []
        for end in sorted(e for e in self._parts if e <= upto_ms):
            shape = (self.n_keys, len(self.fields))
            sums, counts, maxs = np.zeros(shape), np.zeros(shape), np.full(shape, -np.inf)
            for keys, s, c, m in self._parts.pop(end):
                sums[keys], counts[keys], maxs[keys] = s, c, m  # a sensor lives on one partition: copied, not added
            out.append(ClosedWindow(end - self.width_ms, end, self.fields, sums, counts, maxs))
        return out

    def open_starts(self) -> list[int]:
        return sorted(e - self.width_ms for e in self._parts)

    def state(self) -> dict:
        return {"parts": {str(e): [list(p) for p in parts] for e, parts in self._parts.items()}}

    def load(self, state: dict) -> None:
        self._parts = {int(e): [tuple(p) for p in parts] for e, parts in state["parts"].items()}


class MergePipeline(CityPipeline):
    """The merge stage (see the module docstring): :meth:`add` a partition's :class:`Partial`, get
    back the ticks that every partition has now closed, with their tables, vital signs and window
    operators' tables (``window_operators`` as for ``CityPipeline``)."""

    def __init__(self, city, config=None, *, partitions: int, window_operators=()):
        super().__init__(city, config, window_operators=window_operators)
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {partitions}")
        self.partitions = int(partitions)
        self.windows = {k: MergedWindows(tw.n_keys, tw.width_ms, tw.fields) for k, tw in self.windows.items()}
        self.air = MergedWindows(self.air.n_keys, self.air.width_ms, self.air.fields)
        self.seen = MergedWindows(self.seen.n_keys, self.seen.width_ms, self.seen.fields)
        self.closed_upto: dict[int, int] = {}  # partition -> newest tick end it has closed
        self.watermarks: dict[int, int] = {}
        self.idle: set[int] = set()  # partitions out of the merged watermark (streams.faust_read: idle partitions)
        self._pieces: dict[int, list[bytes]] = {}  # partition -> the pieces of its partial so far
        self._holding = False  # add_pieces: ticks closed once, after the last message

    def add_pieces(self, messages) -> list[WindowResult]:
        """Several messages of :func:`partial_pieces` (what the merge took from its topic at once):
        :meth:`add_piece` of each, but the ticks every partition has closed by the last one are
        closed together, in stacked passes of up to ``TICKS_PER_PASS`` ticks, not one pass per
        partial. A tick's tables do not depend on how ticks are grouped in a pass (the local
        driver's batching neither: each tick sees the city as of its own end); the vital signs' and
        window operators' fixed cost per pass is paid once instead of once per partial.

        >>> from brain.city import demo_city_path, load_city
        >>> MergePipeline(load_city(demo_city_path()), partitions=1).add_pieces([])
        []
        """
        self._holding = True
        try:
            for message in messages:
                self.add_piece(message)
        finally:
            self._holding = False
        return self._close_merged()

    def add_piece(self, message: bytes) -> list[WindowResult]:
        """One message of :func:`partial_pieces`: kept until its partial's last piece, then
        :meth:`add` of the whole partial. A partition sends its pieces in order on the one partition
        of the partials topic; pieces left incomplete by a partition that died mid-send are dropped
        when its next partial starts (it sends that partial again after its restart), counted in
        ``pieces_dropped``."""
        if len(message) < PIECE_HEADER.size or message[:4] != PIECE_MAGIC:
            raise ValueError("not a piece of a partial of this CityBrain version")
        _, partition, index, count = PIECE_HEADER.unpack_from(message)
        got = self._pieces.pop(partition, [])
        if index == 0:
            self.counters["pieces_dropped"] += len(got)
            got = []
        elif len(got) != index:  # a piece whose predecessors never came (or came twice)
            self.counters["pieces_dropped"] += len(got) + 1
            return []
        got.append(message[PIECE_HEADER.size:])
        if len(got) < count:
            self._pieces[partition] = got
            return []
        return self.add(decode_partial(b"".join(got)))

    def add(self, part: Partial) -> list[WindowResult]:
        if not 0 <= part.partition < self.partitions:
            raise ValueError(f"partial from partition {part.partition}, but the input topic has {self.partitions}")
        for kind, frame in part.lifecycle.items():
            if frame.height:
                # Held until the tick holding each row's time closes (brain.ticks.StateAsOf), as the local
                # driver does: a tick sees the city as of its own end, whatever the batching. A repeat
                # after a partition's restart changes nothing (a stage keeps its first time, a field its
                # newest setting).
                self.states.add(kind, frame)
        if part.watermark_ms is not None:
            self.watermarks[part.partition] = max(part.watermark_ms, self.watermarks.get(part.partition, part.watermark_ms))
        if part.idle:
            self.idle.add(part.partition)
        else:
            self.idle.discard(part.partition)  # it reads records again: the merged watermark waits for it
        done = self.closed_upto.get(part.partition)
        fresh = [e for e in part.ends if done is None or e > done]  # a repeat after a partition's restart: dropped
        self.counters["ticks_repeated"] += len(part.ends) - len(fresh)
        if fresh:
            # Ticks the merge closed while this partition was idle: too late to count (they hold
            # records that came after the partition's idle spell began), counted, not merged.
            late = {e for e in fresh if self.counters["windows_closed"] and self.next_tick_end_ms is not None and e < self.next_tick_end_ms}
            if late:
                self.counters["ticks_late"] += len(late)
            keep = set(fresh) - late
            for kind, by_end in part.windows.items():
                for end, parts in by_end.items():
                    if end in keep:
                        self.windows[kind].add(end, parts)
            for end, parts in part.seen.items():
                if end in keep:
                    self.seen.add(end, parts)
            for end, parts in part.air.items():
                if done is None or end > done:  # an hour at or before ``done`` came with an earlier pass
                    self.air.add(end, parts)
            self.closed_upto[part.partition] = max(fresh)
            if self.next_tick_end_ms is None or (not self.counters["windows_closed"] and min(fresh) < self.next_tick_end_ms):
                self.next_tick_end_ms = min(fresh)
        return [] if self._holding else self._close_merged()

    def merged_upto(self) -> int | None:
        """The newest tick every partition has closed (None until each has closed one); idle
        partitions are left out (all idle: the newest tick any has closed)."""
        active = [p for p in range(self.partitions) if p not in self.idle]
        if not active:
            return max(self.closed_upto.values()) if self.closed_upto else None
        if any(p not in self.closed_upto for p in active):
            return None
        return min(self.closed_upto[p] for p in active)

    def _close_merged(self) -> list[WindowResult]:
        upto = self.merged_upto()
        if upto is None or self.next_tick_end_ms is None or upto < self.next_tick_end_ms:
            return []
        w = self.config.window_ms
        results: list[WindowResult] = []
        while self.next_tick_end_ms <= upto:
            ends = list(range(self.next_tick_end_ms, min(upto, self.next_tick_end_ms + (TICKS_PER_PASS - 1) * w) + 1, w))
            self.next_tick_end_ms = ends[-1] + w
            results += self._close_stack(ends)
        if len(self.watermarks) == self.partitions:
            wm = min(self.watermarks.values())
            for table in self.lifecycle.values():
                table.prune(wm)
        return results

    def snapshot(self) -> bytes:
        return checkpoint.encode({"pipeline": super().snapshot(), "closed_upto": {str(k): v for k, v in self.closed_upto.items()},
                                  "watermarks": {str(k): v for k, v in self.watermarks.items()}, "partitions": self.partitions,
                                  "idle": sorted(self.idle),
                                  "pieces": {str(k): v for k, v in self._pieces.items()}})

    def restore(self, blob: bytes) -> None:
        state = checkpoint.decode(blob)
        if state.get("partitions") != self.partitions:
            raise ValueError(f"merge state was saved for {state.get('partitions')} partitions, the input topic has {self.partitions}")
        super().restore(state["pipeline"])
        self.closed_upto = {int(k): int(v) for k, v in state["closed_upto"].items()}
        self.watermarks = {int(k): int(v) for k, v in state["watermarks"].items()}
        self.idle = {int(p) for p in state.get("idle", [])}
        self._pieces = {int(k): [bytes(b) for b in v] for k, v in state.get("pieces", {}).items()}


def merge_operators(city, config, out_dir, anomaly_bases=None) -> list:
    """The window operators of the merge stage, as ``citybrain run`` wires them: anomaly scores,
    green-wave plans (the ``signal_plans`` table, and plan files under ``<out_dir>/signal_plans/``,
    whose latest plan per corridor keeps a replayed tick from publishing a plan twice), sensor
    faults, and the cockpit's ``grid_unit`` and ``sensor_freshness`` tables. With ``anomaly_bases``
    (a directory of the merge stage's own, beside its checkpoint) the anomaly state checkpoints as
    a delta against whole states kept there (:mod:`streams.anomaly_store`), as ``citybrain run``'s."""
    from streams.anomaly_operator import maybe_anomaly_operator
    from streams.cockpit_tables import CockpitTables
    from streams.fault_operator import fault_operator
    from streams.greenwave_operator import maybe_greenwave_operator

    anomaly, greenwave = maybe_anomaly_operator(city, config), maybe_greenwave_operator(city, out_dir)
    if anomaly is not None and anomaly_bases is not None:
        from streams.anomaly_store import BaseStore

        anomaly = anomaly.keep_bases_in(BaseStore(anomaly_bases))
    ops = [op for op in (anomaly, greenwave) if op is not None]
    return ops + [fault_operator(city), CockpitTables(city)]


def warm_up(city, config, out_dir, *, merge: bool = True, anomaly_bases=None) -> list:
    """Load (or compile) every kernel both stages run, before the worker joins its group: done
    inside an agent, the first merge batch would hold the event loop (and the partitions' batches
    with it) for as long as the merge operators' kernels take to load. Returns the merge
    operators it built, for the merge stage's first start (a 50k-sensor city's take minutes to
    build: built twice, the second time inside the agent, they stalled every partition's batches);
    none with ``merge=False`` (a ``--role partitions`` worker never runs the merge)."""
    PartitionPipeline(city, config)
    load_merge_kernels(config)
    return merge_operators(city, config, out_dir, anomaly_bases) if merge else []


#: Simulated minutes of the demo city :func:`load_merge_kernels` runs: enough ticks for every merge
#: operator to call its kernels (anomaly and fault scoring, a green-wave replan, vital signs).
WARM_UP_MINUTES = 40


def load_merge_kernels(config=None, minutes: int = WARM_UP_MINUTES) -> float:
    """Run ``minutes`` of the demo city through two partition stages and a merge stage with
    throwaway operators (plans written to a temporary directory); returns the seconds taken.

    The operators' numba kernels are loaded from the cache (or compiled) on their first call, with
    the argument types of that call: the kernel modules' own ``warm_up`` functions do not cover
    every kernel nor every signature the merge stage calls (green-wave planning, segment traffic,
    anomaly scoring of real windows), so without this the first merged ticks of a worker loaded
    them inside the event loop and every partition's reads waited. Types, not sizes, choose the
    machine code, so the demo city loads what any city needs, in seconds, whatever the worker's
    city size.

    >>> load_merge_kernels(minutes=10) < 600
    True
    """
    import tempfile
    import time

    from brain.city import demo_city_path, load_city
    from streams.sim import Simulator

    t0 = time.perf_counter()
    demo = load_city(demo_city_path())
    sim = Simulator(demo, seed=1)
    lines = [line for batch in sim.jsonl_batches(sim.start_ms + minutes * 60_000, batch_s=60)
             for line in batch.split(b"\n") if line]
    with tempfile.TemporaryDirectory(prefix="citybrain-warm-up-") as tmp:
        parts = [PartitionPipeline(demo, config, partition=p) for p in (0, 1)]
        merge = MergePipeline(demo, config, partitions=2, window_operators=merge_operators(demo, config, tmp))
        for p, pipe in enumerate(parts):
            pipe.ingest_jsonl(b"\n".join(line for line in lines if hash_partition(line, 2) == p))
            for partial in pipe.take_partials():
                for piece in partial_pieces(partial):
                    merge.add_piece(piece)
    return time.perf_counter() - t0
