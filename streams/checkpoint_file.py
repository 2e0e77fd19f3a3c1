"""One atomic, versioned, checksummed checkpoint file, with the previous good one kept.

Both drivers (``streams.local`` and ``streams.faust_driver``) save their state through
:class:`CheckpointFile`. A save:

1. encodes the state as data only (:mod:`brain.checkpoint`: MessagePack, numpy arrays, Arrow IPC —
   never pickle);
2. writes header + payload to ``<name>.tmp`` and fsyncs it: the header holds a magic string, the
   format version, the payload's length and its SHA-256;
3. moves the current file to ``<name>.prev`` and the new one into place (``os.replace``), then
   fsyncs the directory so the renames survive a power cut.

A load tries the latest file, then ``<name>.prev``: a torn, truncated or corrupted latest (wrong
length or checksum) falls back to the previous good one, and :attr:`CheckpointFile.fell_back` says so.
When no candidate is good, :class:`CheckpointError` names each file and what is wrong with it; a
file in another format (the old pickled ``checkpoint.bin``, or anything else) is refused, never
unpickled.

Example:
    >>> import tempfile, pathlib
    >>> ckpt = CheckpointFile(pathlib.Path(tempfile.mkdtemp()) / "checkpoint.bin")
    >>> ckpt.load() is None
    True
    >>> ckpt.save({"version": 1, "n": 1}); ckpt.save({"version": 1, "n": 2}); ckpt.load()["n"]
    2
    >>> with open(ckpt.path, "r+b") as f:
    ...     _ = f.truncate(20)  # a torn write of the latest
    >>> ckpt.load()["n"], ckpt.fell_back
    (1, True)
"""
from __future__ import annotations

import hashlib
import logging
import os
import struct
from pathlib import Path

from brain.checkpoint import StateFormatError, decode, encode

log = logging.getLogger("citybrain.checkpoint")

MAGIC = b"CITYBRAIN-CKPT\n"
FORMAT_VERSION = 1
_HEADER = struct.Struct(">HQ32s")  # format version, payload length, SHA-256 of the payload


class CheckpointError(ValueError):
    """No checkpoint file could be read (each candidate's problem is in the message)."""


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable (best effort where directories cannot be fsynced)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems that refuse directory fsync
        pass
    finally:
        os.close(fd)


def _read(path: Path):
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        if data[:1] == b"\x80":
            raise CheckpointError(f"{path} is a pickle (written by an older CityBrain); pickles are never read: "
                                  "start afresh with --fresh, or use another --out directory")
        raise CheckpointError(f"{path} is not a CityBrain checkpoint (bad header)")
    head = len(MAGIC)
    if len(data) < head + _HEADER.size:
        raise CheckpointError(f"{path} is truncated ({len(data)} bytes, the header alone is {head + _HEADER.size})")
    version, length, digest = _HEADER.unpack_from(data, head)
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {version}, this CityBrain reads {FORMAT_VERSION}")
    payload = memoryview(data)[head + _HEADER.size:]
    if len(payload) != length:
        raise CheckpointError(f"{path} is truncated or padded ({len(payload)} payload bytes, the header says {length})")
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(f"{path} is corrupted (checksum mismatch)")
    try:
        return decode(payload)
    except StateFormatError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


class CheckpointFile:
    """The checkpoint at ``path`` (see the module docstring); ``save(state)`` / ``load()``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.previous = self.path.with_name(self.path.name + ".prev")
        self.fell_back = False

    def exists(self) -> bool:
        return self.path.exists() or self.previous.exists()

    def remove(self) -> None:
        """Forget every checkpoint (``--fresh``)."""
        for p in (self.path, self.previous, self.path.with_name(self.path.name + ".tmp")):
            p.unlink(missing_ok=True)

    def save(self, state) -> None:
        payload = encode(state)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(MAGIC)
            f.write(_HEADER.pack(FORMAT_VERSION, len(payload), hashlib.sha256(payload).digest()))
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        if self.path.exists() and not self.fell_back:  # a damaged latest must not push out the good previous
            os.replace(self.path, self.previous)
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)
        self.fell_back = False

    def load(self):
        """The newest good state, None when there is no checkpoint at all."""
        self.fell_back = False
        problems = []
        for candidate in (self.path, self.previous):
            if not candidate.exists():
                continue
            try:
                state = _read(candidate)
            except (CheckpointError, OSError) as exc:
                problems.append(str(exc))
                continue
            if problems:
                self.fell_back = True
                log.warning("checkpoint fell back", extra={"fields": {"used": str(candidate), "problems": problems}})
            return state
        if problems:
            raise CheckpointError("no usable checkpoint: " + "; ".join(problems))
        return None
