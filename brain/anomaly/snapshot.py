"""Named numpy arrays as one bytes object, written with one copy: the anomaly state's checkpoint.

A detector's state is a few large float64 arrays (75k keys: ~250 MB). Archive formats (npz) and
generic encoders copy them several times; here the bytes are ``MAGIC``, an 8-byte header length, a
JSON header (format name, caller's fields, each array's dtype, shape and offset) and the raw arrays,
each copied once into a buffer allocated once. Reading makes one copy per array (the state must own
its memory). Only number and bool dtypes are accepted, so nothing in the bytes can run code.

Example:
    >>> import numpy as np
    >>> blob = pack_arrays("demo/1", {"names": ["a", "b"]}, {"x": np.arange(3.0), "k": np.array([7], np.int64)})
    >>> fields, arrays = unpack_arrays("demo/1", blob)
    >>> fields["names"], arrays["x"].tolist(), arrays["k"].tolist()
    (['a', 'b'], [0.0, 1.0, 2.0], [7])
    >>> unpack_arrays("other/1", blob)
    Traceback (most recent call last):
    ...
    brain.anomaly.snapshot.SnapshotFormatError: snapshot format 'demo/1', expected 'other/1'
"""
from __future__ import annotations

import json

import numpy as np

MAGIC = b"CBARRAYS1\n"
_KINDS = frozenset("biuf")


class SnapshotFormatError(ValueError):
    """Bytes that are not an array snapshot of the expected format (damaged, foreign, another format)."""


def pack_arrays(fmt: str, fields: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """``arrays`` (numbers or bools) and JSON-able ``fields`` as bytes tagged with format ``fmt``."""
    specs, offset = {}, 0
    for name, arr in arrays.items():
        if arr.dtype.kind not in _KINDS:
            raise TypeError(f"array {name!r} of dtype {arr.dtype} is not state data (numbers and bools only)")
        specs[name] = [arr.dtype.str, list(arr.shape), offset]
        offset += arr.nbytes
    header = json.dumps({"format": fmt, "fields": fields, "arrays": specs}).encode()
    start = len(MAGIC) + 8 + len(header)
    out = bytearray(start + offset)
    out[: len(MAGIC)] = MAGIC
    out[len(MAGIC): len(MAGIC) + 8] = len(header).to_bytes(8, "little")
    out[len(MAGIC) + 8: start] = header
    for name, arr in arrays.items():
        _, shape, off = specs[name]
        np.frombuffer(out, dtype=arr.dtype, count=arr.size, offset=start + off).reshape(arr.shape)[...] = arr
    return bytes(out)


def unpack_arrays(fmt: str, data) -> tuple[dict, dict[str, np.ndarray]]:
    """``(fields, arrays)`` of :func:`pack_arrays` bytes of format ``fmt``."""
    view = memoryview(data)
    if bytes(view[: len(MAGIC)]) != MAGIC:
        raise SnapshotFormatError("not an array snapshot (bad header)")
    try:
        n = int.from_bytes(view[len(MAGIC): len(MAGIC) + 8], "little")
        start = len(MAGIC) + 8 + n
        head = json.loads(bytes(view[len(MAGIC) + 8: start]))
        if head.get("format") != fmt:
            raise SnapshotFormatError(f"snapshot format {head.get('format')!r}, expected {fmt!r}")
        arrays = {}
        for name, (dtype_str, shape, off) in head["arrays"].items():
            dtype = np.dtype(dtype_str)
            if dtype.kind not in _KINDS:
                raise SnapshotFormatError(f"array {name!r} of dtype {dtype} in a snapshot")
            count = int(np.prod(shape)) if shape else 1
            if start + off + count * dtype.itemsize > len(view):
                raise SnapshotFormatError(f"array {name!r} runs past the end of the snapshot")
            arrays[name] = np.frombuffer(view, dtype=dtype, count=count, offset=start + off).reshape(shape).copy()
        return head.get("fields", {}), arrays
    except SnapshotFormatError:
        raise
    except Exception as exc:  # damaged header or shapes
        raise SnapshotFormatError(f"damaged array snapshot ({type(exc).__name__}: {exc})") from None
