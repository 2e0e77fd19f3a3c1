"""Plain-Python twin of the JSON-lines scanner :func:`brain.kernels.jsonscan.scan`: the same grammar
written as regular expressions and Python's own correctly rounded ``float()`` for values, so the
tests can compare the kernel with it line for line (the accepted grammar is in ``jsonscan``'s
module docstring).

Example:
    >>> import numpy as np
    >>> from brain.kernels.jsonscan import line_bounds, make_spec, scan
    >>> spec = make_spec({"noise": [("sensor_id", "str", False, None), ("ts_ms", "int", False, None),
    ...                             ("laeq_db", "float", True, None)]})
    >>> buf = b'{"kind":"noise","sensor_id":"N1","ts_ms":7,"laeq_db":55.25}\\n{"kind":"noise","ts_ms":"x"}\\n'
    >>> starts, ends = line_bounds(np.frombuffer(buf, np.uint8))
    >>> ref = scan_reference(buf, starts, ends, spec)
    >>> ref.status.tolist(), float(ref.fcols[0, 0]), int(ref.icols[1, 0])
    ([0, -1], 55.25, 7)
    >>> kernel = scan(np.frombuffer(buf, np.uint8), starts, ends, spec)
    >>> kernel.status.tolist() == ref.status.tolist() and float(kernel.fcols[0, 0]) == 55.25
    True
"""
from __future__ import annotations

import re

import numpy as np

from brain.kernels.jsonscan import MAX_DIGITS, MAX_EXP10, MAX_EXP_DIGITS, MAX_MANTISSA, ScanResult, ScanSpec

_WS = rb"[ \t\r\n]*"
_STR = rb'"([\x20\x21\x23-\x5b\x5d-\x7f]*)"'
_NUM = rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_HEAD = re.compile(_WS + rb"\{" + _WS + rb'"kind"' + _WS + rb":" + _WS + _STR)
_MEMBER = re.compile(_WS + rb"," + _WS + _STR + _WS + rb":" + _WS + rb"(?:" + _STR + rb"|(" + _NUM + rb")|(null))")
_CLOSE = re.compile(_WS + rb"\}" + _WS + rb"\Z")
_INT_LIT = re.compile(rb"(-?)(0|[1-9][0-9]*)")
_FLOAT_LIT = re.compile(rb"(-?)([0-9]+)(?:\.([0-9]+))?(?:[eE]([+-]?)([0-9]+))?")


def _exact_float(lit: bytes) -> float | None:
    """The literal's value if it is in the exact fast-path domain (module doc), else None."""
    sign, whole, frac, esign, exp = _FLOAT_LIT.fullmatch(lit).groups()
    frac = frac or b""
    m = int(whole + frac)
    too_long = len(whole) + len(frac) > MAX_DIGITS or (exp is not None and len(exp) > MAX_EXP_DIGITS)
    if too_long or m > MAX_MANTISSA or (sign and m == 0):
        return None
    e10 = (-int(exp) if esign == b"-" else int(exp)) if exp is not None else 0
    if abs(e10 - len(frac)) > MAX_EXP10:
        return None
    return float(lit)


def _reference_line(line: bytes, spec: ScanSpec) -> tuple[int, dict | None, dict]:
    """(kind index by the opening bytes or -1, {field: value} if accepted, {str field: its offset})."""
    head = _HEAD.match(line)
    if head is None or head.group(1).decode() not in spec.kinds:
        return -1, None, {}
    k = spec.kinds.index(head.group(1).decode())
    fields = {f[0]: f for f in spec.fields[k]}
    values: dict[str, object] = {}
    at: dict[str, int] = {}
    pos = head.end()
    while True:
        if (close := _CLOSE.match(line, pos)) is not None:
            break
        member = _MEMBER.match(line, pos)
        if member is None:
            return k, None, {}
        key, text, number, null = member.group(1).decode(), member.group(2), member.group(3), member.group(4)
        if key not in fields or key in values:
            return k, None, {}
        _, type_name, optional, _ = fields[key]
        if null is not None:
            if not optional:
                return k, None, {}
            values[key] = None
        elif type_name == "str":
            if text is None:
                return k, None, {}
            values[key] = text.decode()
            at[key] = member.start(2)
        elif number is None:
            return k, None, {}
        elif type_name == "int":
            lit = _INT_LIT.fullmatch(number)
            if lit is None or len(lit.group(2)) > MAX_DIGITS:
                return k, None, {}
            values[key] = int(number)
        else:
            values[key] = _exact_float(number)
            if values[key] is None:
                return k, None, {}
        pos = member.end()
    assert close is not None
    for name, _, optional, default in spec.fields[k]:
        if name not in values:
            if default is None and not optional:
                return k, None, {}
            values[name] = default
    return k, values, at


def scan_reference(buf: bytes, starts: np.ndarray, ends: np.ndarray, spec: ScanSpec) -> ScanResult:
    """Plain-Python twin of :func:`scan` (same outputs; unused cells of the row blocks are 0)."""
    per_line = [_reference_line(bytes(buf[s:e]), spec) for s, e in zip(starts.tolist(), ends.tolist())]
    n_kinds = len(spec.kinds)
    cap = [sum(1 for k, _, _ in per_line if k == kk) for kk in range(n_kinds)]
    offsets = np.cumsum([0] + cap[:-1]).astype(np.int64)
    total = sum(cap)
    fcols = np.zeros((spec.n_fslots, total))
    icols = np.zeros((spec.n_islots, total), np.int64)
    row_line = np.zeros(total, np.int64)
    counts = np.zeros(n_kinds, np.int64)
    status = np.full(len(per_line), -1, np.int64)
    ids: dict[str, int] = {}
    id_start: list[int] = []
    for i, (k, values, at) in enumerate(per_line):
        if values is None:
            continue
        row = int(offsets[k] + counts[k])
        fslot = islot = 0
        for name, type_name, _, _ in spec.fields[k]:
            v = values[name]
            if type_name == "float":
                fcols[fslot, row] = np.nan if v is None else v
                fslot += 1
                continue
            if type_name == "str":
                if v not in ids:
                    ids[v] = len(ids)
                    id_start.append(int(starts[i]) + at[name])
                v = ids[v]
            icols[islot, row] = v
            islot += 1
        row_line[row] = i
        counts[k] += 1
        status[i] = k
    id_len = np.array([len(s.encode()) for s in ids], np.int64)
    return ScanResult(status, counts, offsets, fcols, icols, row_line, np.array(id_start, np.int64), id_len)
