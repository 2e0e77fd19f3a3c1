"""An append-only, fsynced file of the notifications and audit entries buffered during a Redis outage.

While the alert-state Redis is down, :class:`streams.alerts.journal.AlertJournal` keeps each window's
transaction in a bounded buffer; the state part of a transaction (alert values, groups, rule memory)
merges into a bounded size, but notifications and audit entries only accumulate. They go here instead
of memory: one record per transaction (its sequence number, its notifications, its audit entries),
appended and fsynced before the window is done. When Redis answers again the journal reads the
records back in order, a bounded chunk at a time; after a restart the checkpoint's buffered
transactions point here.

Record layout: ``<u32 length><u32 crc32>`` then the MessagePack of :class:`SpillRecord`. A torn tail (a
crash during an append) fails its length or checksum and is cut off when the file is opened.

Example:
    >>> import tempfile, os
    >>> from streams.alerts.journal import NoteOut
    >>> spill = NoteSpill(os.path.join(tempfile.mkdtemp(), "alert-spill.bin"))
    >>> spill.append(3, [NoteOut("ops", "k1", 0, b"{}", {})], [])
    >>> spill.append(4, [NoteOut("ops", "k2", 0, b"{}", {})], [{"action": "fire"}])
    >>> [(r.seq, [n.key for n in r.notes]) for _, _, r in spill.records()]
    [(3, ['k1']), (4, ['k2'])]
    >>> spill.truncate_after(3); [r.seq for _, _, r in spill.records()]
    [3]
    >>> spill.clear(); spill.size_bytes
    0
    >>> spill.close()
"""
from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import msgspec

from streams.alerts.journal import NoteOut

log = logging.getLogger("citybrain.alerts")

_HEADER = struct.Struct("<II")  # payload length, crc32 of the payload
#: a record longer than this is damage, not data (one window's notifications are far smaller)
MAX_RECORD_BYTES = 256 * 1024 * 1024


class SpillRecord(msgspec.Struct, array_like=True):
    """One buffered transaction's notifications and audit entries, in the order they were made.

    >>> SpillRecord(7, [], [{"action": "fire"}]).key
    (7, 0)
    """

    seq: int
    notes: list[NoteOut]
    audit: list[dict]
    part: int = 0  # a second record of the same transaction (a resync's re-enqueued notifications) counts on

    @property
    def key(self) -> tuple[int, int]:
        return (self.seq, self.part)


_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(SpillRecord)


class NoteSpill:
    """The spill file at ``path`` (created with its folder). ``append`` fsyncs before returning, so a
    checkpoint written afterwards never points at records the disk does not hold."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self.size_bytes = os.fstat(self._fd).st_size
        self.torn_bytes_cut = 0
        self.last_key: tuple[int, int] | None = None  # (seq, part) of the last record
        self._cut_torn_tail()

    def append(self, seq: int, notes: list[NoteOut], audit: list[dict]) -> None:
        """Append (and fsync) one record; ``seq`` never goes back (records are applied in file order)."""
        last = self.last_key
        if last is not None and seq < last[0]:
            raise ValueError(f"spill records go in sequence order: {seq} after {last[0]}")
        part = last[1] + 1 if last is not None and seq == last[0] else 0
        payload = _enc.encode(SpillRecord(int(seq), list(notes), list(audit), part))
        data = memoryview(_HEADER.pack(len(payload), zlib.crc32(payload)) + payload)
        try:
            done = 0
            while done < len(data):  # a short write (a nearly full disk) goes on where it stopped
                done += os.write(self._fd, data[done:])
            os.fsync(self._fd)
        except OSError:
            # a full disk or an I/O error: leave no half record behind (later appends would follow it and
            # be cut off with it at the next open); the caller keeps this record's items in memory
            try:
                self._truncate(self.size_bytes)
            except OSError:
                pass  # the torn tail is cut at the next open, with whatever follows it
            raise
        self.size_bytes += len(data)
        self.last_key = (int(seq), part)

    def records(self, offset: int = 0) -> Iterator[tuple[int, int, SpillRecord]]:
        """``(start, end, record)`` from byte ``offset`` on, one record in memory at a time."""
        while offset < self.size_bytes:
            rec = self._read_at(offset)
            if rec is None:
                return
            end, record = rec
            yield offset, end, record
            offset = end

    def truncate_after(self, seq: int) -> None:
        """Drop the records of transactions after ``seq`` (a restart recomputes those windows)."""
        last = None
        for start, _, rec in self.records():
            if rec.seq > seq:
                self._truncate(start)
                break
            last = rec.key
        self.last_key = last

    def clear(self) -> None:
        self._truncate(0)
        self.last_key = None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _read_at(self, offset: int) -> tuple[int, SpillRecord] | None:
        head = os.pread(self._fd, _HEADER.size, offset)
        if len(head) < _HEADER.size:
            return None
        length, crc = _HEADER.unpack(head)
        if length > MAX_RECORD_BYTES or offset + _HEADER.size + length > self.size_bytes:
            return None
        payload = os.pread(self._fd, length, offset + _HEADER.size)
        if len(payload) < length or zlib.crc32(payload) != crc:
            return None
        try:
            return offset + _HEADER.size + length, _dec.decode(payload)
        except msgspec.DecodeError:
            return None

    def _cut_torn_tail(self) -> None:
        end = 0
        for _, end, rec in self.records():
            self.last_key = rec.key
        if end < self.size_bytes:  # a crash mid-append (or damage): what follows the last whole record goes
            self.torn_bytes_cut = self.size_bytes - end
            log.warning("alert spill file: cut a damaged tail", extra={"fields": {
                "path": str(self.path), "kept_bytes": end, "cut_bytes": self.torn_bytes_cut}})
            self._truncate(end)

    def _truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)
        os.fsync(self._fd)
        self.size_bytes = size
