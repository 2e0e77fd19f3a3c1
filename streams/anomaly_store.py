"""Whole anomaly states ("bases") in files of their own, so a checkpoint holds only what changed since.

A 50k-sensor city's anomaly state is ~170 MB; a tick changes each key's scalars and one seasonal bin
(:mod:`brain.anomaly.delta`). With a :class:`BaseStore`, :class:`streams.anomaly_operator.AnomalyOperator`
writes the whole state here once in a while and puts only a delta against it (and the base's
generation and SHA-256) into the checkpoint. A base is written like the checkpoint itself
(``.tmp``, fsync, rename, fsync of the directory) and always *before* the checkpoint that refers to
it, so a crash never leaves a checkpoint pointing at a missing or partial base. The newest
``keep`` bases stay, at least 3: the latest checkpoint and its previous file (the fallback) each
refer to one, and a crash between writing a new base and the checkpoint leaves both pointing at
the older two.

Example:
    >>> import tempfile
    >>> store = BaseStore(tempfile.mkdtemp())
    >>> gen, digest = store.write(b"state one")
    >>> store.write(b"state two")[0] == gen + 1, store.read(gen, digest)
    (True, b'state one')
    >>> store.read(gen, "0" * 64)
    Traceback (most recent call last):
    ...
    ValueError: anomaly base ...base-00000001.bin is damaged (its SHA-256 is not the checkpoint's)
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from streams.checkpoint_file import fsync_dir

_NAME = re.compile(r"^base-(\d{8})\.bin$")


class BaseStore:
    """Numbered base files ``base-<generation>.bin`` in ``directory`` (created when needed); the
    newest ``keep`` (at least 3) are kept."""

    def __init__(self, directory: str | os.PathLike, keep: int = 3) -> None:
        self.directory = Path(directory)
        self.keep = max(3, int(keep))

    def _generations(self) -> list[int]:
        if not self.directory.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.directory.iterdir() if (m := _NAME.match(p.name)))

    def path(self, generation: int) -> Path:
        return self.directory / f"base-{generation:08d}.bin"

    def write(self, blob: bytes) -> tuple[int, str]:
        """Store ``blob`` as the next generation; ``(generation, SHA-256 hex)``. Older bases beyond
        the newest ``keep`` are removed."""
        self.directory.mkdir(parents=True, exist_ok=True)
        generations = self._generations()
        generation = (generations[-1] if generations else 0) + 1
        path = self.path(generation)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(self.directory)
        for old in (generations + [generation])[: -self.keep]:
            self.path(old).unlink(missing_ok=True)
        return generation, hashlib.sha256(blob).hexdigest()

    def read(self, generation: int, digest: str) -> bytes:
        """The base ``generation``, checked against ``digest`` (clear errors, never a traceback's guess)."""
        path = self.path(int(generation))
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"anomaly base {path} cannot be read ({exc.strerror or exc}); the checkpoint needs it") from None
        if hashlib.sha256(blob).hexdigest() != digest:
            raise ValueError(f"anomaly base {path} is damaged (its SHA-256 is not the checkpoint's)")
        return blob

