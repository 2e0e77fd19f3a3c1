"""The read path of the distributed engine: input messages -> per-partition stage -> partials and dead letters.

:class:`PartitionReader` is what the ``citybrain-partition`` agent of :mod:`streams.faust_driver`
runs per batch and per input partition (no Faust in here: the agent hands it messages and
coroutines that send, so the same code runs under a test's fake sender):

1. the batch's messages of one partition (blocks of records, or single records) become one
   columnar ``ingest_jsonl`` of the partition's :class:`streams.faust_stages.PartitionPipeline`
   (offsets at or below the stage's checkpoint are skipped: applied before a restart);
2. dead letters go out **keyed by where their record was read** —
   ``<topic>:<partition>:<offset>:<line in the message>`` —, so the copies a crash makes (a worker
   killed after sending them and before its checkpoint reads that batch again) carry the same key,
   record and reason code (a late record's reason text names the watermark it was judged against,
   which depends on how the replay batched): a reader of the dead-letter topic (or a compacted
   topic) keeps one per key;
3. the partials of the ticks it closed go to the merge stage, then the producer is flushed, then
   the partition's checkpoint (state + last offset) is saved; only then does Faust ack the batch.

**Idle partitions.** The merged watermark is the minimum over partitions, so a partition that
receives nothing would hold every window back forever. A partition this worker holds that has
nothing left to read (its consumer position is at the broker's high-water mark) and has received
no message for ``idle_timeout_s`` of wall time is *idle*: its stage closes the windows its records
cover (as the end of a file does: ``CityPipeline.flush``), sends them, and sends an idle marker; the
merge leaves it out of the merged watermark until it sends ticks again. A record that arrives for
a window the partition has thus closed is a late record of that partition (a dead letter with
reason ``late``), as it would be locally after a quiet spell. A partition that never received a
record at all (an empty partition) is marked idle the same way. The marker is sent again every
``idle_timeout_s`` while the partition stays idle (a merge stage that restarted, or moved, learns
it again). Off with ``idle_timeout_s=None`` (windows then wait for every partition, as before).

Example (a partition's batch through a fake sender; the second read of the same offsets, as after
a crash, is skipped):
    >>> import asyncio, tempfile
    >>> from brain.city import demo_city_path, load_city
    >>> sent = []
    >>> async def send(topic, key, value): sent.append((topic, key))
    >>> async def flush(): pass
    >>> reader = PartitionReader(load_city(demo_city_path()), None, tempfile.mkdtemp(), "demo", send=send, flush=flush,
    ...                          input_topic="in", partials_topic="parts", deadletter_topic="dead")
    >>> good = b'{"kind":"noise","sensor_id":"NS-01","ts_ms":1780243200000,"laeq_db":55.0}'
    >>> msgs = [Message(7, b"\\n".join([good, b'{"broken', good]), True)]
    >>> asyncio.run(reader.batch(0, msgs)), sent
    (3, [('dead', b'in:0:7:1'), ('dead', b'in:0:7:2')])
    >>> asyncio.run(reader.batch(0, msgs)), reader.states[0].offset
    (0, 7)
"""
from __future__ import annotations

import asyncio
import bisect
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec

log = logging.getLogger("citybrain.faust")


class _IdTime(msgspec.Struct):
    sensor_id: str | None = None
    ts_ms: int | None = None


_id_time = msgspec.json.Decoder(_IdTime)


@dataclass
class Message:
    """One input message as the reader needs it: offset, value, whether it is a block of records."""

    offset: int
    value: bytes
    block: bool = False
    handle: object = None  # the transport's message, for holding its acknowledgement until a checkpoint


def message_lines(value: bytes, block: bool) -> list[bytes]:
    """The records of one input message: a block holds one per line; any other message is one
    record, its newlines read as JSON whitespace.

    >>> message_lines(b'{"a":1}\\n\\n{"a":2}', True), message_lines(b'{"a":\\n1}', False)
    ([b'{"a":1}', b'{"a":2}'], [b'{"a": 1}'])
    """
    if not value:
        return []
    if block:
        return [line for line in value.split(b"\n") if line.strip()]
    return [value.rstrip(b"\n").replace(b"\n", b" ")]


def _sensor_time(text: str | bytes) -> tuple | None:
    try:
        rec = _id_time.decode(text)
    except Exception:  # noqa: BLE001 - not a JSON object with these fields: matched by its text only
        return None
    return (rec.sensor_id, rec.ts_ms) if rec.sensor_id is not None and rec.ts_ms is not None else None


def dead_letter_keys(source: str, partition: int, offsets: list[int], starts: list[int], lines: list[bytes],
                     raws: list[str | None]) -> list[bytes]:
    """The key of each dead letter of a batch: ``<source>:<partition>:<offset>:<line>``, the input
    message's offset and the record's line in it. A dead letter is matched to its line by its raw
    text (lines that did not decode keep their text), else by its ``sensor_id`` and ``ts_ms`` (a
    decoded record's raw text is re-written by the decoder). Several dead letters matching the same
    lines take the *last* of them — a duplicate comes after the copy that was applied —, so the key
    does not depend on where the batch starts. A dead letter no line matches gets a key by its order
    in the batch (``...:<last offset>:x<n>``: unique, but a replay with other batch bounds may key
    it differently).

    ``offsets[j]`` is the j-th message's offset, ``starts[j]`` the index of its first line in ``lines``.

    >>> lines = [b'{"sensor_id":"A","ts_ms":1}', b'{"sensor_id":"A","ts_ms":1}', b'oops', b'{"sensor_id":"B","ts_ms":1}']
    >>> raws = ['{"sensor_id":"A","ts_ms":1,"x":null}', "oops", "gone"]
    >>> [k.decode() for k in dead_letter_keys("t", 3, [10, 11], [0, 2], lines, raws)]
    ['t:3:10:1', 't:3:11:0', 't:3:11:x2']
    """
    texts: dict[bytes, int] = {}
    times: dict[tuple, int] = {}
    match: list = []
    for raw in raws:
        b = raw.encode("utf-8", "surrogatepass") if raw is not None else None
        match.append(b)
        if b is not None:
            texts[b] = texts.get(b, 0) + 1
    where: dict = {}
    if texts:
        for i, line in enumerate(lines):
            if line in texts:
                where.setdefault(line, []).append(i)
    for n, b in enumerate(match):  # not a line's text: a decoded record, matched by sensor and time
        if b is not None and b not in where:
            key = _sensor_time(b)
            match[n] = key
            if key is not None:
                times[key] = times.get(key, 0) + 1
    if times:
        wanted_ts = {str(ts).encode() for _, ts in times}
        for i, line in enumerate(lines):
            at = line.find(b'"ts_ms"')
            if at < 0:
                continue
            digits = line[at + 7:at + 40].lstrip(b": ").split(b",", 1)[0].split(b"}", 1)[0].strip()
            if digits in wanted_ts:
                key = _sensor_time(line)
                if key in times:
                    where.setdefault(key, []).append(i)
    counts = {**texts, **times}
    taken = {k: positions[-counts[k]:] for k, positions in where.items()}
    last = offsets[-1] if offsets else -1
    keys = []
    for n, k in enumerate(match):
        positions = taken.get(k) if k is not None else None
        if positions:
            i = positions.pop(0)
            j = bisect.bisect_right(starts, i) - 1
            keys.append(f"{source}:{partition}:{offsets[j]}:{i - starts[j]}".encode())
        else:
            keys.append(f"{source}:{partition}:{last}:x{n}".encode())
    return keys


def ingest_isolating(pipeline, lines: list[bytes], before: bytes | None = None) -> tuple[list, list[bytes]]:
    """Ingest ``lines`` as one batch; should the pipeline raise, only the lines that make it raise
    are refused: the batch is halved from a snapshot taken before each try (``before``: the
    pipeline's snapshot as it stands now, if the caller has one) down to single lines. Returns the
    results of what was applied and one dead-letter message per refused line (``reason_code``
    ``unprocessable``), each counted as a record in and a dead letter. A poison message thus goes to
    the dead-letter topic and the offsets move on, instead of the worker stopping on it forever.

    >>> from brain.city import load_city, demo_city_path
    >>> from brain.pipeline import CityPipeline
    >>> class Fragile(CityPipeline):  # a fault injected by the example: one line breaks the pipeline
    ...     def ingest_jsonl(self, buf):
    ...         if b"BOOM" in buf:
    ...             self.counters["records_in"] += 99  # damage done before the failure, rolled back
    ...             raise RuntimeError("boom")
    ...         return super().ingest_jsonl(buf)
    >>> pipe = Fragile(load_city(demo_city_path()))
    >>> good = b'{"kind":"noise","sensor_id":"NS-01","ts_ms":1780243200000,"laeq_db":55.0}'
    >>> results, refused = ingest_isolating(pipe, [good, b'{"BOOM":1}', good.replace(b"55.0", b"56.0")])
    >>> len(refused), json.loads(refused[0])["reason_code"], pipe.counters["records_in"], pipe.invariant_holds()
    (1, 'unprocessable', 3, True)
    """
    if before is None:
        before = pipeline.snapshot()
    try:
        return [pipeline.ingest_jsonl(b"\n".join(lines) + b"\n")], []
    except Exception as exc:  # noqa: BLE001 - whatever breaks, only the lines that break it are refused
        pipeline.restore(before)
        if len(lines) == 1:
            c = pipeline.counters
            c["records_in"] += 1
            c["dead_lettered"] += 1
            c["dead.unprocessable"] += 1
            log.error("record refused: the pipeline failed on it", extra={"fields": {"error": repr(exc)[:300]}})
            return [], [_dumps({"reason_code": "unprocessable", "reason": f"the pipeline failed on it ({type(exc).__name__}: {exc})"[:500],
                                "raw": lines[0][:2000].decode("utf-8", "replace")})]
        mid = len(lines) // 2
        first, refused_first = ingest_isolating(pipeline, lines[:mid])
        second, refused_second = ingest_isolating(pipeline, lines[mid:])
        return first + second, refused_first + refused_second


def deadletter_rows(result) -> list[tuple]:
    """``(reason_code, reason, raw)`` of each dead or late record of one pipeline step."""
    return [row for frame in (result.dead, result.late) for row in frame.select("reason_code", "reason", "raw").iter_rows()]


def _dumps(obj) -> bytes:
    return json.dumps(obj, default=str, ensure_ascii=False, separators=(",", ":")).encode()


class PartitionReader:
    """The per-partition stages this worker holds, fed batch by batch (see the module docstring).

    ``send(topic, key, value)`` and ``flush()`` are coroutines (the Faust app's producer);
    ``crash_after``: fault injection for the kill tests (exit 137 after the n-th batch's outputs
    were flushed, before its checkpoint)."""

    def __init__(self, city, config, out_dir, app_id: str, *, send, flush, input_topic: str, partials_topic: str,
                 deadletter_topic: str, worker_id: int = 0, piece_bytes: int | None = None, idle_timeout_s: float | None = None,
                 crash_after: int = 0, checkpoint_every_s: float = 0.0, hold=None, release=None, shards=None, send_shard=None):
        from brain.pipeline import PipelineConfig

        self.city, self.config, self.out_dir, self.app_id = city, config or PipelineConfig(), Path(out_dir), app_id
        self.send, self.flush = send, flush
        self.input_topic, self.partials_topic, self.deadletter_topic = input_topic, partials_topic, deadletter_topic
        self.worker_id, self.piece_bytes, self.crash_after = worker_id, piece_bytes, crash_after
        if idle_timeout_s is not None and not idle_timeout_s > 0:
            raise ValueError(f"idle_timeout_s must be > 0 seconds or None, got {idle_timeout_s!r}")
        self.idle_timeout_s = idle_timeout_s
        if not checkpoint_every_s >= 0 or (checkpoint_every_s > 0 and (hold is None or release is None)):
            raise ValueError("checkpoint_every_s must be >= 0 seconds, and > 0 needs hold and release")
        self.checkpoint_every_s = checkpoint_every_s
        self.hold, self.release = hold, release
        # The split merge (streams.faust_shards): each partial also goes, restricted to its sensors,
        # to every corridor shard, ``send_shard(shard, key, value)``.
        self.shards, self.send_shard = shards, send_shard
        self.held: dict[int, list] = {}  # partition -> transport messages applied, not yet in a checkpoint (not acked)
        self.replay: dict[int, list[bytes]] = {}  # partition -> the batches applied since its last checkpoint
        self.saved_at: dict[int, float] = {}
        self.states: dict = {}
        self.lock = asyncio.Lock()  # a batch and the idle check never interleave on one partition's state
        self.last_message: dict[int, float] = {}  # partition -> monotonic time its last message came
        self.read_upto: dict[int, int] = {}  # partition -> newest offset handed to us
        self.idle_sent: dict[int, float] = {}  # partition -> when its idle marker last went out
        self.flushed: dict[int, int | None] = {}  # partition -> its newest record time when it was last flushed

    def stage(self, partition: int):
        """The stage of ``partition``: loaded from its checkpoint on first use, or again when another
        worker wrote that checkpoint since (the partition was elsewhere meanwhile)."""
        from streams.faust_stages import PartitionPipeline
        from streams.faust_state import StageState, stage_path

        state = self.states.get(partition)
        if state is None or state.stale():
            for handle in self.held.pop(partition, []):  # another worker has checkpointed past them since
                self.release(handle)
            self.replay.pop(partition, None)
            self.saved_at.pop(partition, None)
            state = StageState(PartitionPipeline(self.city, self.config, partition=partition), stage_path(self.out_dir, self.app_id, partition))
            if state.load():
                log.info("partition resumed", extra={"fields": {"partition": partition, "offset": state.offset}})
            self.states[partition] = state
        return state

    async def batch(self, partition: int, messages: list[Message]) -> int:
        """Apply one batch of ``partition``'s messages (in offset order); returns the records read."""
        async with self.lock:
            self.last_message[partition] = time.monotonic()
            if messages:
                self.read_upto[partition] = max(self.read_upto.get(partition, -1), messages[-1].offset)
            state = self.stage(partition)
            lines: list[bytes] = []
            offsets: list[int] = []
            starts: list[int] = []
            top = -1
            fresh = []
            for msg in messages:
                if msg.offset <= state.offset:
                    continue  # applied before a restart; its offset was not committed yet
                fresh.append(msg)
                offsets.append(msg.offset)
                starts.append(len(lines))
                lines.extend(message_lines(msg.value, msg.block))
                top = max(top, msg.offset)
            if top < 0:
                return 0
            if state.last_blob is None:
                state.last_blob = state.pipeline.snapshot()  # what the first batch rolls back to, should it fail
                self.replay[partition] = []
            buf = b"\n".join(lines) + b"\n"
            clean = True
            try:
                results, refused = [state.pipeline.ingest_jsonl(buf)] if lines else [], []
            except Exception:  # noqa: BLE001 - the rare path: find the lines that break it
                clean = False
                results, refused = ingest_isolating(state.pipeline, lines, self._rebuild(partition, state))
            rows = [row for result in results for row in deadletter_rows(result)]
            rows += [(m["reason_code"], m["reason"], m["raw"]) for m in map(json.loads, refused)]
            if rows:
                keys = dead_letter_keys(self.input_topic, partition, offsets, starts, lines, [raw for _, _, raw in rows])
                for key, (code, reason, raw) in zip(keys, rows):
                    await self.send(self.deadletter_topic, key, _dumps({"reason_code": code, "reason": reason, "raw": raw}))
            await self._send_partials(state)
            await self.flush()
            state.offset = top
            state.batches += 1
            if state.batches == self.crash_after:  # fault injection (tests): outputs sent, checkpoint not saved
                os._exit(137)
            self.idle_sent.pop(partition, None)
            now = time.monotonic()
            if not clean or self.checkpoint_every_s <= 0 or now - self.saved_at.get(partition, 0.0) >= self.checkpoint_every_s:
                await self._save(state)  # (a batch that needed isolating is saved at once: what replays is clean)
            else:
                # Not checkpointed yet: its messages are held (not acknowledged, so their offsets are not
                # committed) until the checkpoint that holds them; until then the batch can be replayed.
                for msg in fresh:
                    if msg.handle is not None:
                        self.hold(msg.handle)
                        self.held.setdefault(partition, []).append(msg.handle)
                self.replay.setdefault(partition, []).append(buf)
            return len(lines)

    def _rebuild(self, partition: int, state) -> bytes:
        """The stage as it was before the current batch: its last checkpoint, then the (clean)
        batches applied since, whose outputs went out already (dropped here). Returns its snapshot."""
        state.pipeline.restore(state.last_blob)
        for buf in self.replay.get(partition, []):
            state.pipeline.ingest_jsonl(buf)
        state.pipeline.take_partials()
        return state.pipeline.snapshot()

    async def checkpoint_due(self, now: float | None = None) -> list[int]:
        """Checkpoint the partitions whose held batches are ``checkpoint_every_s`` old, and let
        their messages be acknowledged (a timer runs this, so a quiet partition's last batches, or a
        partition being revoked, are not held for long)."""
        now = time.monotonic() if now is None else now
        done = []
        async with self.lock:
            for partition in [p for p, h in self.held.items() if h]:
                if now - self.saved_at.get(partition, now) >= self.checkpoint_every_s:
                    await self._save(self.states[partition])
                    done.append(partition)
        return done

    async def _send_partials(self, state) -> None:
        await self._send_parts(state.pipeline.take_partials(), state.pipeline)

    async def _send_parts(self, parts, pipeline) -> None:
        from streams.faust_stages import partial_pieces

        def pieces(part):
            return partial_pieces(part, self.piece_bytes) if self.piece_bytes else partial_pieces(part)

        for part in parts:
            for piece in pieces(part):  # a big partial in several messages
                await self.send(self.partials_topic, part.key, piece)
            if self.shards is not None:  # every partial, even one of lifecycle rows only: it says the partition reads again
                for shard, sub in enumerate(self.shards.restrict(part, pipeline)):
                    for piece in pieces(sub):
                        await self.send_shard(shard, sub.key, piece)

    async def _save(self, state) -> None:
        partition = state.pipeline.partition
        await state.save_async({"closed_upto": state.pipeline.closed_upto, "worker_id": self.worker_id, "idle": partition in self.idle_sent})
        self.saved_at[partition] = time.monotonic()
        self.replay[partition] = []
        for handle in self.held.pop(partition, []):
            self.release(handle)  # in the checkpoint now: its offset may be committed

    async def check_idle(self, highwaters: dict[int, int | None], now: float | None = None) -> list[int]:
        """Mark idle the partitions of ``highwaters`` ({partition: the broker's high-water mark as
        this worker's consumer last saw it}: the partitions this worker holds) that have nothing
        left to read and got no message for ``idle_timeout_s``; returns the partitions it marked
        (or marked again) now. Run it every second or so."""
        if self.idle_timeout_s is None:
            return []
        from streams.faust_stages import Partial

        now = time.monotonic() if now is None else now
        marked = []
        async with self.lock:
            for partition, high in sorted(highwaters.items()):
                first = self.last_message.setdefault(partition, now)  # newly held: its clock starts now
                if high is None or high > self.read_upto.get(partition, -1) + 1 or now - first < self.idle_timeout_s:
                    continue
                sent = self.idle_sent.get(partition)
                if sent is not None and now - sent < self.idle_timeout_s:
                    continue
                state = self.stage(partition)
                if state.offset < self.read_upto.get(partition, -1):
                    continue  # read but not applied yet
                if self.flushed.get(partition) != state.pipeline.clock.newest_ms():  # once per idle spell
                    state.pipeline.flush()  # close the windows its records cover: nothing more is coming
                    # (flush moves the clock to the end of what it closed: again, it would close one tick more)
                    self.flushed[partition] = state.pipeline.clock.newest_ms()
                parts = state.pipeline.take_partials()
                parts.append(Partial(partition, [], state.pipeline.clock.watermark_ms, idle=True))
                await self._send_parts(parts, state.pipeline)
                await self.flush()
                self.idle_sent[partition] = now
                await self._save(state)
                marked.append(partition)
                log.info("partition idle", extra={"fields": {"partition": partition, "closed_upto": state.pipeline.closed_upto}})
        return marked
