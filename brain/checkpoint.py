"""Checkpointed state as data only: the contract every stateful object follows, and its byte format.

Why not pickle: unpickling runs whatever code the bytes name, so anyone able to write the
checkpoint file (``--out``) could run code in the engine. State here is plain data, so it is
encoded as MessagePack (msgspec) with two extension types and nothing else:

- a numpy array (numeric or bool dtypes only, never ``object``) as its dtype, shape and raw bytes;
- a polars frame as Arrow IPC bytes (a data-only columnar format with its own schema).

Decoding builds only dicts, lists, strings, numbers, bytes, numpy arrays and polars frames; bytes
that are not this format are refused with :class:`StateFormatError`, whatever they hold (a pickle
included: it is never unpickled).

The contract (like Flink's ``CheckpointedFunction``): a stateful object has ``snapshot()``, returning
its state as bytes of this format, and ``restore(blob)``, replacing its state from them (and raising
``ValueError`` with a readable reason when they do not fit). The pipeline, its window operators and
the drivers' sources follow it; files are written by ``streams.checkpoint_file``.

Example:
    >>> import numpy as np, polars as pl
    >>> blob = encode({"n": 3, "ts": np.array([1, 2], np.int64), "frame": pl.DataFrame({"a": [1.5]}), "ids": (4, 5)})
    >>> state = decode(blob)
    >>> state["n"], state["ts"].tolist(), state["frame"]["a"].to_list(), state["ids"]
    (3, [1, 2], [1.5], [4, 5])
    >>> import pickle
    >>> decode(pickle.dumps({"n": 3}))
    Traceback (most recent call last):
    ...
    brain.checkpoint.StateFormatError: not CityBrain state data (bad header): refusing to read it
"""
from __future__ import annotations

import io
from typing import Protocol, runtime_checkable

import msgspec
import numpy as np
import polars as pl

MAGIC = b"CBSTATE1"
_EXT_ARRAY, _EXT_FRAME = 1, 2
#: dtype kinds an array may have: bool, signed and unsigned ints, floats (never objects or strings).
_DTYPE_KINDS = frozenset("biuf")


class StateFormatError(ValueError):
    """Bytes that are not CityBrain state data (damaged, foreign, or an old pickle)."""


@runtime_checkable
class Checkpointed(Protocol):
    """What a stateful object answers: its state as bytes, and a restore from them.

    Example:
        >>> class Counter:
        ...     def __init__(self): self.n = 0
        ...     def snapshot(self) -> bytes: return encode({"n": self.n})
        ...     def restore(self, blob: bytes) -> None: self.n = decode(blob)["n"]
        >>> a = Counter(); a.n = 7; b = Counter(); b.restore(a.snapshot())
        >>> b.n, isinstance(b, Checkpointed)
        (7, True)
    """

    def snapshot(self) -> bytes: ...

    def restore(self, blob: bytes) -> None: ...


def _enc_hook(obj):
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _DTYPE_KINDS:
            raise TypeError(f"array of dtype {obj.dtype} is not state data (numbers and bools only)")
        arr = np.ascontiguousarray(obj)
        return msgspec.msgpack.Ext(_EXT_ARRAY, msgspec.msgpack.encode([arr.dtype.str, list(arr.shape), arr.tobytes()]))
    if isinstance(obj, pl.DataFrame):
        buf = io.BytesIO()
        obj.write_ipc(buf)
        return msgspec.msgpack.Ext(_EXT_FRAME, buf.getvalue())
    if isinstance(obj, np.generic):  # numpy scalars as plain numbers
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not state data")


def _ext_hook(code: int, data: memoryview):
    if code == _EXT_ARRAY:
        dtype_str, shape, raw = msgspec.msgpack.decode(data)
        dtype = np.dtype(dtype_str)
        if dtype.kind not in _DTYPE_KINDS:
            raise StateFormatError(f"array of dtype {dtype} in state data")
        n = int(np.prod(shape)) if shape else 1
        if n * dtype.itemsize != len(raw):
            raise StateFormatError("array of the wrong size in state data")
        return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    if code == _EXT_FRAME:
        return pl.read_ipc(io.BytesIO(bytes(data)))
    raise StateFormatError(f"unknown extension type {code} in state data")


_ENCODER = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_DECODER = msgspec.msgpack.Decoder(ext_hook=_ext_hook)


def encode(state) -> bytes:
    """``state`` (dicts, lists, tuples, str, int, float, bool, None, bytes, numpy arrays and polars
    frames) as bytes; anything else raises ``TypeError``."""
    return MAGIC + _ENCODER.encode(state)


def decode(blob: bytes):
    """The state :func:`encode` wrote (tuples come back as lists); :class:`StateFormatError` for
    anything else."""
    if not isinstance(blob, (bytes, bytearray, memoryview)) or bytes(blob[: len(MAGIC)]) != MAGIC:
        raise StateFormatError("not CityBrain state data (bad header): refusing to read it")
    try:
        return _DECODER.decode(memoryview(blob)[len(MAGIC):])
    except StateFormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - damaged bytes, whatever msgspec or Arrow make of them
        raise StateFormatError(f"damaged state data ({type(exc).__name__}: {exc})") from None
