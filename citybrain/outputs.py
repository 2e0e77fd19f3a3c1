"""Output paths checked before any work starts, so an unwritable place is a one-line error, not a
traceback after minutes of computing.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> output_file(d / "wave.png", "--diagram") == d / "wave.png"
    True
    >>> output_file(d / "maps" / "wave.png", "--diagram").parent.is_dir()  # missing folders are made
    True
    >>> output_file("/proc/no/wave.png", "--diagram")
    Traceback (most recent call last):
    ...
    citybrain.cli.UserError: --diagram: cannot create folder /proc/no (No such file or directory)
    >>> output_dir(d / "run" / "history", "--out").is_dir()
    True
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from citybrain.cli import UserError


def _probe(folder: Path, option: str, target: Path) -> None:
    # Root passes os.access almost everywhere (not on /proc or a read-only mount): try a real write.
    try:
        fd, probe = tempfile.mkstemp(prefix=".citybrain-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{option}: cannot write to {target} ({exc.strerror or exc})") from None


def output_file(path: str | os.PathLike, option: str) -> Path:
    """``path`` as a :class:`Path` once its folder exists (made if missing) and takes a new file; else
    :class:`UserError` naming ``option``."""
    target = Path(path)
    if target.is_dir():
        raise UserError(f"{option}: {target} is a folder; give a file name")
    output_dir(target.parent, option)
    return target


def output_dir(path: str | os.PathLike, option: str) -> Path:
    """``path`` created (with parents) and checked writable; else :class:`UserError` naming ``option``."""
    target = Path(path)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UserError(f"{option}: {target} exists and is not a folder") from None
    except OSError as exc:
        raise UserError(f"{option}: cannot create folder {target} ({exc.strerror or exc})") from None
    _probe(target, option, target)
    return target
