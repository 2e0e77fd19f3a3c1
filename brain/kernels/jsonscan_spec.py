"""The JSON-lines scanner's grammar as flat arrays: which kinds, which fields, their types and defaults.

:func:`make_spec` validates a ``{kind: [(field, type, optional, default), ...]}`` description once and
lays it out as the arrays :func:`brain.kernels.jsonscan.scan` walks (key bytes packed 8 per word, so a
key compares in one or two integer operations). The limits here (digits, mantissa, exponent) are the
grammar's: a number inside them converts in one correctly rounded IEEE operation.

Example:
    >>> spec = make_spec({"hazard": [("sensor_id", "str", False, None), ("value", "float", True, None)]})
    >>> spec.kinds, spec.field_type.tolist(), spec.field_optional.tolist()
    (('hazard',), [0, 2], [False, True])
    >>> make_spec({"hazard": [("value", "int", True, None)]})
    Traceback (most recent call last):
    ...
    ValueError: field 'value': only float fields may be optional (null is stored as NaN)
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

FIELD_STR, FIELD_INT, FIELD_FLOAT = 0, 1, 2
_TYPE_CODES = {"str": FIELD_STR, "int": FIELD_INT, "float": FIELD_FLOAT}
MAX_DIGITS = 18  # 10**18 - 1 < 2**63: never overflows int64
MAX_MANTISSA = 2**53  # every integer up to here is an exact double
MAX_EXP10 = 22  # 10**22 is the largest exact power of ten in a double
MAX_EXP_DIGITS = 4


class ScanSpec(NamedTuple):
    """Kinds and fields as flat arrays (built by :func:`make_spec`)."""

    kinds: tuple[str, ...]
    fields: tuple[tuple[tuple[str, str, bool, object], ...], ...]  # per kind: (name, type, optional, default)
    kind_names: np.ndarray  # uint8, kind names concatenated
    kind_name_off: np.ndarray  # int64[K + 1]
    kind_field_off: np.ndarray  # int64[K + 1]: kind k owns fields kind_field_off[k] : kind_field_off[k + 1]
    required_mask: np.ndarray  # int64[K]: bit j = the kind's j-th field is required
    field_names: np.ndarray  # uint8
    field_name_off: np.ndarray  # int64[F + 1]
    key_words: np.ndarray  # uint64[F, W]: each field's key bytes and closing quote, 8 per word, little-endian
    key_masks: np.ndarray  # uint64[F, W]: which bytes of those words count
    field_type: np.ndarray  # int64[F]: FIELD_STR / FIELD_INT / FIELD_FLOAT
    field_slot: np.ndarray  # int64[F]: row of ``icols`` (str, int) or ``fcols`` (float)
    field_optional: np.ndarray  # bool[F]: null allowed
    default_f: np.ndarray  # float64[F]: float default (NaN = null)
    default_i: np.ndarray  # int64[F]: int default
    n_fslots: int
    n_islots: int


class ScanResult(NamedTuple):
    status: np.ndarray  # int64[n_lines]: kind index if accepted, -1 if not
    counts: np.ndarray  # int64[K]: accepted rows per kind
    offsets: np.ndarray  # int64[K]: first row of each kind
    fcols: np.ndarray  # float64[n_fslots, rows]
    icols: np.ndarray  # int64[n_islots, rows]
    row_line: np.ndarray  # int64[rows]: line number of each row
    id_start: np.ndarray  # int64[n_distinct]: byte offset of each distinct string's first occurrence
    id_len: np.ndarray  # int64[n_distinct]


def make_spec(kinds: Mapping[str, Sequence[tuple[str, str, bool, object]]]) -> ScanSpec:
    """Flat arrays for ``{kind: [(field, "str"|"int"|"float", optional, default), ...]}``.

    ``default`` None on a non-optional field means required; on an optional field, null. Fields keep
    their order within a kind; the ``kind`` key itself is not a field.
    """
    if not kinds:
        raise ValueError("at least one kind is needed")
    kind_names, kind_name_off, kind_field_off, required = bytearray(), [0], [0], []
    names, name_off, ftype, fslot, fopt, dflt_f, dflt_i = bytearray(), [0], [], [], [], [], []
    n_f = n_i = 0
    norm = []
    for kind, fields in kinds.items():
        _check_name(kind, "kind")
        if not 0 < len(fields) <= 62:
            raise ValueError(f"kind {kind!r}: needs 1 to 62 fields, got {len(fields)}")
        if len({f[0] for f in fields}) != len(fields) or any(f[0] == "kind" for f in fields):
            raise ValueError(f"kind {kind!r}: field names must be unique and not 'kind'")
        kind_names += kind.encode()
        kind_name_off.append(len(kind_names))
        mask, fi, ii = 0, 0, 0
        for j, (name, type_name, optional, default) in enumerate(fields):
            _check_name(name, "field")
            if type_name not in _TYPE_CODES:
                raise ValueError(f"field {name!r}: type must be str, int or float, got {type_name!r}")
            code = _TYPE_CODES[type_name]
            if optional and code != FIELD_FLOAT:
                raise ValueError(f"field {name!r}: only float fields may be optional (null is stored as NaN)")
            if code == FIELD_STR and default is not None:
                raise ValueError(f"field {name!r}: str fields cannot have a default")
            if default is not None and (
                isinstance(default, bool)
                or (code == FIELD_INT and not (isinstance(default, int) and -(2**63) <= default < 2**63))
                or (code == FIELD_FLOAT and not isinstance(default, (int, float)))
            ):
                raise ValueError(f"field {name!r}: default {default!r} is not a valid {type_name}")
            if default is None and not optional:
                mask |= 1 << j
            names += name.encode()
            name_off.append(len(names))
            ftype.append(code)
            fopt.append(bool(optional))
            dflt_f.append(float(default) if code == FIELD_FLOAT and default is not None else np.nan)
            dflt_i.append(int(default) if code == FIELD_INT and default is not None else 0)
            if code == FIELD_FLOAT:
                fslot.append(fi)
                fi += 1
            else:
                fslot.append(ii)
                ii += 1
        n_f, n_i = max(n_f, fi), max(n_i, ii)
        required.append(mask)
        kind_field_off.append(len(ftype))
        norm.append(tuple((f[0], f[1], bool(f[2]), f[3]) for f in fields))
    keys = [names[a:b] + b'"' for a, b in zip(name_off[:-1], name_off[1:])]
    n_words = max((len(key) + 7) // 8 for key in keys)
    key_words = np.zeros((len(keys), n_words), np.uint64)
    key_masks = np.zeros((len(keys), n_words), np.uint64)
    for f, key in enumerate(keys):
        padded = key.ljust(8 * n_words, b"\0")
        for w in range(n_words):
            key_words[f, w] = int.from_bytes(padded[8 * w : 8 * w + 8], "little")
            used = min(max(len(key) - 8 * w, 0), 8)
            key_masks[f, w] = (1 << (8 * used)) - 1
    return ScanSpec(
        tuple(kinds), tuple(norm), np.frombuffer(bytes(kind_names), np.uint8).copy(), np.array(kind_name_off, np.int64),
        np.array(kind_field_off, np.int64), np.array(required, np.int64), np.frombuffer(bytes(names), np.uint8).copy(),
        np.array(name_off, np.int64), key_words, key_masks, np.array(ftype, np.int64), np.array(fslot, np.int64),
        np.array(fopt, np.bool_),
        np.array(dflt_f, np.float64), np.array(dflt_i, np.int64), max(n_f, 1), max(n_i, 1),
    )


def _check_name(name: str, what: str) -> None:
    if not name or not all(0x20 <= ord(c) < 0x7F and c not in '"\\' for c in name):
        raise ValueError(f"{what} name {name!r} must be non-empty printable ASCII without quotes or backslashes")
