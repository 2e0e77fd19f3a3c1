"""Strict JSON-lines scanner: the lines of flat numeric records, straight into columns.

``scan`` is the numba kernel; ``brain.kernels.jsonscan_reference.scan_reference`` is the plain-Python
version the tests compare it with (regular expressions for the grammar, Python's own correctly rounded
``float()`` for values). The kinds and fields arrive as a :class:`~brain.kernels.jsonscan_spec.ScanSpec`
(:func:`~brain.kernels.jsonscan_spec.make_spec`), the lines from :func:`brain.kernels.newlines.line_bounds`;
both are re-exported here.

A line is *accepted* only if it is, byte for byte, a record this scanner can read exactly the way
msgspec would: ``{"kind":"<k>", ...}`` with the ``kind`` key first, then keys from that kind's field
set (each at most once, any order), JSON whitespace anywhere JSON allows it, nothing after the
closing brace but whitespace, and every required field present. Values:

- str fields: a string of printable ASCII without backslash escapes (interned, see below);
- int fields: ``-?(0|[1-9][0-9]*)`` with at most 18 digits (so it fits int64), no fraction, no exponent;
- float fields: a JSON number whose at most 18 decimal digits form an integer m <= 2**53 and whose
  decimal exponent e satisfies |e| <= 22 (exponent literal at most 4 digits; no negative zero), so that
  ``m * 10**e`` or ``m / 10**-e`` is one correctly rounded IEEE operation on exact operands and
  equals the correctly rounded decimal value bit for bit; an int literal is a float too;
- ``null`` only for Optional float fields (stored as NaN: JSON has no NaN, so NaN means null).

Every other line is left alone (status -1) for the caller's general decoder. Accepted rows are
written grouped by kind (kind k owns rows ``offsets[k] : offsets[k] + counts[k]``, in line order),
with ``row_line`` giving each row's line number. String values are interned per call: a str field's
column holds a code into the distinct strings, given as byte ranges of their first occurrence
(``id_start``, ``id_len``), so no Python object is made per line.

Example:
    >>> import numpy as np
    >>> spec = make_spec({"hazard": [("sensor_id", "str", False, None), ("ts_ms", "int", False, None),
    ...                              ("value", "float", False, None), ("unit_c", "float", True, None)]})
    >>> buf = b'{"kind":"hazard","sensor_id":"H1","ts_ms":5,"value":1.5}\\n{"kind":"hazard","value":1e999}\\n'
    >>> starts, ends = line_bounds(np.frombuffer(buf, np.uint8))
    >>> out = scan(np.frombuffer(buf, np.uint8), starts, ends, spec)
    >>> out.status.tolist(), int(out.counts[0])
    ([0, -1], 1)
    >>> float(out.fcols[0, 0]), bool(np.isnan(out.fcols[1, 0])), int(out.icols[1, 0])
    (1.5, True, 5)
    >>> bytes(buf[out.id_start[0] : out.id_start[0] + out.id_len[0]])
    b'H1'
"""
from __future__ import annotations

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros

from brain.kernels.jsonscan_spec import (  # noqa: F401 - re-exported: the scanner's public face
    FIELD_FLOAT,
    FIELD_INT,
    FIELD_STR,
    MAX_DIGITS,
    MAX_EXP10,
    MAX_EXP_DIGITS,
    MAX_MANTISSA,
    ScanResult,
    ScanSpec,
    make_spec,
)
from brain.kernels.newlines import line_bounds, line_bounds_reference  # noqa: F401 - re-exported


def scan(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, spec: ScanSpec) -> ScanResult:
    """Scan the lines ``buf[starts[i]:ends[i]]`` (uint8 array) with the numba kernel."""
    if buf.flags.writeable:  # one compiled signature (read-only, as from bytes), warmed up at start
        buf = buf.view()
        buf.flags.writeable = False
    out = _scan_kernel(
        buf, np.ascontiguousarray(starts, np.int64), np.ascontiguousarray(ends, np.int64), spec.kind_names,
        spec.kind_name_off, spec.kind_field_off, spec.required_mask, spec.field_names, spec.field_name_off,
        spec.key_words, spec.key_masks,
        spec.field_type, spec.field_slot, spec.field_optional, spec.default_f, spec.default_i, spec.n_fslots,
        spec.n_islots,
    )
    return ScanResult(*out)


def warm_up() -> None:
    """Compile (or load from the cache) the kernel on a tiny input, outside any measured batch."""
    spec = make_spec({"k": [("s", "str", False, None), ("t", "int", False, None), ("v", "float", True, None)]})
    buf = np.frombuffer(b'{"kind":"k","s":"a","t":1,"v":null}', np.uint8)
    scan(buf, *line_bounds(buf), spec)


# --- the kernel ----------------------------------------------------------------------------------
_NIBBLE_HI = np.uint64(0xF0F0F0F0F0F0F0F0)
_ZEROS = np.uint64(0x3030303030303030)
_SIXES = np.uint64(0x0606060606060606)


@njit(cache=True)
def _digits8(w):  # pragma: no cover - compiled
    """(how many of the 8 little-endian bytes in ``w`` are leading ASCII digits, their value)."""
    # A byte is a digit iff its high nibble is 3 and stays 3 after adding 6. A carry out of a byte
    # >= 0xFA only reaches bytes after a non-digit, which do not count.
    flags = ((w & _NIBBLE_HI) ^ _ZEROS) | (((w + _SIXES) & _NIBBLE_HI) ^ _ZEROS)
    n = 8 if flags == 0 else np.int64(trailing_zeros(flags)) >> 3
    if n == 0:
        return 0, np.uint64(0)
    # The digits moved to the top bytes (zero bytes below read as leading zeros), then combined
    # pairwise: 2 digits, 4, 8 (multiplications wrap on purpose).
    v = (w << np.uint64(8 * (8 - n))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    v = (v * np.uint64(2561)) >> np.uint64(8)
    v = ((v & np.uint64(0x00FF00FF00FF00FF)) * np.uint64(6553601)) >> np.uint64(16)
    v = ((v & np.uint64(0x0000FFFF0000FFFF)) * np.uint64(42949672960001)) >> np.uint64(32)
    return n, v


# One function without called helpers on purpose: numba reference-counts the array arguments of
# every helper call (atomic increments), which cost more than the parsing itself; the one helper,
# _digit_run, is inlined at the IR level. Bytes are read as buf[_u(i)]: an unsigned index skips
# numba's negative-index wraparound (measured: a third fewer instructions).
_u = np.uint64


@njit(inline="always")
def _digit_run(buf, p, n_buf, m, before, ipow10):  # pragma: no cover - compiled
    """Reads the digits at ``p`` 8 bytes at a time (SWAR) into ``m``: (m, digits read, new p).

    Stops after the first word that is not all digits, or once ``before`` + read exceeds
    MAX_DIGITS (the caller refuses the line then). Inlined into the kernel at the IR level, so
    ``buf`` costs no reference counting for the call (see the note above the kernel).
    """
    count = 0
    while True:
        w = np.uint64(0)
        if p + 8 <= n_buf:
            for r in range(8):
                w |= np.uint64(buf[_u(p + r)]) << np.uint64(8 * r)
        else:
            for r in range(n_buf - p):
                w |= np.uint64(buf[_u(p + r)]) << np.uint64(8 * r)
        k8, v8 = _digits8(w)
        m = m * ipow10[k8] + np.int64(v8)
        count += k8
        p += k8
        if k8 < 8 or before + count > MAX_DIGITS:
            return m, count, p


@njit(cache=True)
def _scan_kernel(buf, starts, ends, kind_names, kind_name_off, kind_field_off, required_mask, field_names,
                 field_name_off, key_words, key_masks, field_type, field_slot, field_optional, default_f, default_i,
                 n_fslots, n_islots):  # pragma: no cover - compiled
    n = len(starts)
    n_buf = len(buf)
    # Words each key (name and closing quote) needs: a short key compares one word, not the longest key's count.
    key_n_words = np.empty(len(field_type), np.int64)
    for f in range(len(field_type)):
        key_n_words[f] = (field_name_off[f + 1] - field_name_off[f] + 8) // 8
    n_kinds = len(kind_name_off) - 1
    ipow10 = np.empty(9, np.int64)
    ipow10[0] = 1
    for j in range(1, 9):
        ipow10[j] = ipow10[j - 1] * 10
    pow10 = np.empty(MAX_EXP10 + 1, np.float64)
    pow10[0] = 1.0
    for j in range(1, MAX_EXP10 + 1):
        pow10[j] = pow10[j - 1] * 10.0  # exact: every 10**j, j <= 22, is a double
    is_ws = np.zeros(256, np.bool_)  # JSON whitespace
    for c in (32, 9, 13, 10):
        is_ws[c] = True
    status = np.full(n, -1, np.int64)
    after_kind = np.zeros(n, np.int64)
    # The fields that may be left out (not required), kind by kind.
    dflt_off = np.zeros(n_kinds + 1, np.int64)
    dflt_field = np.empty(len(field_type), np.int64)
    for k in range(n_kinds):
        dflt_off[k + 1] = dflt_off[k]
        for f in range(kind_field_off[k], kind_field_off[k + 1]):
            if not (required_mask[k] >> (f - kind_field_off[k])) & 1:
                dflt_field[dflt_off[k + 1]] = f
                dflt_off[k + 1] += 1

    # Pass 1: the kind of each line from its opening `{"kind":"<k>"`, so each kind gets a block of rows.
    cap = np.zeros(n_kinds, np.int64)
    for i in range(n):
        p = starts[i]
        end = ends[i]
        while p < end and is_ws[buf[_u(p)]]:
            p += 1
        if p >= end or buf[_u(p)] != 123:
            continue
        p += 1
        while p < end and is_ws[buf[_u(p)]]:
            p += 1
        if (p + 6 > end or buf[_u(p)] != 34 or buf[_u(p + 1)] != 107 or buf[_u(p + 2)] != 105 or buf[_u(p + 3)] != 110
                or buf[_u(p + 4)] != 100 or buf[_u(p + 5)] != 34):
            continue
        p += 6
        while p < end and is_ws[buf[_u(p)]]:
            p += 1
        if p >= end or buf[_u(p)] != 58:
            continue
        p += 1
        while p < end and is_ws[buf[_u(p)]]:
            p += 1
        if p >= end or buf[_u(p)] != 34:
            continue
        s = p + 1
        for k in range(n_kinds):
            a = kind_name_off[k]
            ln = kind_name_off[k + 1] - a
            if s + ln >= end or buf[_u(s + ln)] != 34:
                continue
            j = 0
            while j < ln and buf[_u(s + j)] == kind_names[a + j]:
                j += 1
            if j == ln:  # kind names hold no quote, so the string ends right there
                status[i] = k
                after_kind[i] = s + ln + 1
                cap[k] += 1
                break

    offsets = np.zeros(n_kinds, np.int64)
    total = 0
    for k in range(n_kinds):
        offsets[k] = total
        total += cap[k]
    fcols = np.empty((n_fslots, total), np.float64)
    icols = np.empty((n_islots, total), np.int64)
    row_line = np.empty(total, np.int64)
    counts = np.zeros(n_kinds, np.int64)
    # Interning: arrays sized for the worst case (every str value distinct), so none is replaced in the
    # loop (a replaced array is reference-counted at every branch); the hash table in use is a prefix
    # of `table` that doubles as it fills, so it stays small and in cache.
    n_str = 0
    for k in range(n_kinds):
        per_kind = 0
        for f in range(kind_field_off[k], kind_field_off[k + 1]):
            if field_type[f] == 0:
                per_kind += 1
        n_str = max(n_str, per_kind)
    max_ids = total * n_str
    max_size = 1024
    while max_size < 2 * max_ids:  # load factor at most one half
        max_size *= 2
    table = np.empty(max_size, np.int64)
    size = 1024
    table[:size] = -1
    mask = np.uint64(size - 1)
    id_start = np.empty(max_ids, np.int64)
    id_len = np.empty(max_ids, np.int64)
    id_hash = np.empty(max_ids, np.uint64)
    n_ids = 0
    str_s = np.zeros(n_islots, np.int64)
    str_e = np.zeros(n_islots, np.int64)
    str_h = np.zeros(n_islots, np.uint64)

    # Pass 2: parse each candidate line; its row is committed (counts[k] += 1) only if all of it passes.
    for i in range(n):
        k = status[i]
        if k < 0:
            continue
        status[i] = -1
        end = ends[i]
        row = offsets[k] + counts[k]
        f0 = kind_field_off[k]
        f1 = kind_field_off[k + 1]
        seen = np.int64(0)
        hint = f0
        p = after_kind[i]
        ok = False
        while True:  # one member per turn; `break` without ok = not accepted
            while p < end and is_ws[buf[_u(p)]]:
                p += 1
            if p >= end:
                break
            c = buf[_u(p)]
            if c == 125:
                p += 1
                while p < end and is_ws[buf[_u(p)]]:
                    p += 1
                ok = p == end and (seen & required_mask[k]) == required_mask[k]
                break
            if c != 44:
                break
            p += 1
            while p < end and is_ws[buf[_u(p)]]:
                p += 1
            # key: a plain string (no escape, control or non-ASCII byte) naming one of the kind's fields
            if p >= end or buf[_u(p)] != 34:
                break
            ks = p + 1
            f = -1
            if hint < f1:  # keys usually come in schema order: try the next field's name first
                klen = field_name_off[hint + 1] - field_name_off[hint]
                n_words = key_n_words[hint]
                if ks + 8 * n_words <= n_buf and ks + klen < end:
                    # 8 bytes at a time: the name and its closing quote against precomputed words
                    same = True
                    for w in range(n_words):
                        q8 = np.uint64(ks + 8 * w)
                        word = np.uint64(0)
                        for j in range(8):
                            word |= np.uint64(buf[_u(q8 + np.uint64(j))]) << np.uint64(8 * j)
                        if (word ^ key_words[hint, w]) & key_masks[hint, w]:
                            same = False
                            break
                    if same:  # field names hold no quote, so the key ends right there
                        f = hint
            if f < 0:
                q = ks
                while q < end:
                    c = buf[_u(q)]
                    if c == 34 or c < 32 or c == 92 or c >= 128:
                        break
                    q += 1
                if q >= end or buf[_u(q)] != 34:
                    break
                klen = q - ks
                for g in range(f0, f1):
                    a = field_name_off[g]
                    if field_name_off[g + 1] - a == klen:
                        j = 0
                        while j < klen and buf[_u(ks + j)] == field_names[a + j]:
                            j += 1
                        if j == klen:
                            f = g
                            break
            if f < 0:
                break  # unknown key (or a second "kind")
            bit = np.int64(1) << (f - f0)
            if seen & bit:
                break  # duplicate key
            seen |= bit
            hint = f + 1
            p = ks + klen + 1
            while p < end and is_ws[buf[_u(p)]]:
                p += 1
            if p >= end or buf[_u(p)] != 58:
                break
            p += 1
            while p < end and is_ws[buf[_u(p)]]:
                p += 1
            if p >= end:
                break
            slot = field_slot[f]
            t = field_type[f]
            c = buf[_u(p)]
            if c == 110:  # null
                if not (field_optional[f] and p + 4 <= end and buf[_u(p + 1)] == 117 and buf[_u(p + 2)] == 108
                        and buf[_u(p + 3)] == 108):
                    break
                fcols[slot, row] = np.nan
                p += 4
                continue
            if t == 0:
                if c != 34:
                    break
                q = p + 1
                h = np.uint64(14695981039346656037)  # FNV-1a, for interning, in the same pass
                while q < end:
                    c = buf[_u(q)]
                    if c == 34 or c < 32 or c == 92 or c >= 128:
                        break
                    h = (h ^ np.uint64(c)) * np.uint64(1099511628211)
                    q += 1
                if q >= end or buf[_u(q)] != 34:
                    break
                str_s[slot] = p + 1
                str_e[slot] = q
                str_h[slot] = h
                p = q + 1
                continue
            # a number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
            neg = c == 45
            if neg:
                p += 1
                if p >= end:
                    break
                c = buf[_u(p)]
            m = np.int64(0)
            nd = 0  # digits so far (integer part, then fraction)
            if c == 48:
                p += 1
                nd = 1
            elif 49 <= c <= 57:
                # 8 bytes at a time (SWAR): fewer unpredictable loop exits. Digits read past the line's
                # end (a line cut mid-number) move p past it, and the line is refused right after.
                m, nd, p = _digit_run(buf, p, n_buf, m, 0, ipow10)
                if nd > MAX_DIGITS:
                    break
            else:
                break
            more = p < end and (buf[_u(p)] == 46 or buf[_u(p)] == 101 or buf[_u(p)] == 69)
            if t == 1:
                if more:
                    break  # a fraction or exponent makes it a float literal, refused for int fields
                icols[slot, row] = -m if neg else m
                continue
            e10 = 0
            if p < end and buf[_u(p)] == 46:
                p += 1
                m, nf, p = _digit_run(buf, p, n_buf, m, nd, ipow10)
                if nf == 0 or nd + nf > MAX_DIGITS:
                    break
                e10 = -nf
            if m > MAX_MANTISSA:
                break
            if p < end and (buf[_u(p)] == 101 or buf[_u(p)] == 69):
                p += 1
                eneg = False
                if p < end and (buf[_u(p)] == 43 or buf[_u(p)] == 45):
                    eneg = buf[_u(p)] == 45
                    p += 1
                ne = 0
                x = 0
                while p < end and 48 <= buf[_u(p)] <= 57 and ne <= MAX_EXP_DIGITS:
                    x = x * 10 + (np.int64(buf[_u(p)]) - 48)
                    ne += 1
                    p += 1
                if ne == 0 or ne > MAX_EXP_DIGITS:
                    break
                e10 += -x if eneg else x
            if neg and m == 0:
                break  # msgspec reads "-0" as +0.0 but "-0.0" as -0.0: leave both to it
            if e10 > MAX_EXP10 or e10 < -MAX_EXP10:
                break
            v = float(m)
            if e10 >= 0:
                v = v * pow10[e10]
            else:
                v = v / pow10[-e10]
            fcols[slot, row] = -v if neg else v
        if not ok:
            continue
        for d in range(dflt_off[k], dflt_off[k + 1]):  # fields the line left out take their default
            f = dflt_field[d]
            if not (seen >> (f - f0)) & 1:
                if field_type[f] == 2:
                    fcols[field_slot[f], row] = default_f[f]
                else:
                    icols[field_slot[f], row] = default_i[f]
        for f in range(f0, f1):
            if field_type[f] != 0:
                continue
            s = str_s[field_slot[f]]
            e = str_e[field_slot[f]]
            h = str_h[field_slot[f]]
            if 2 * (n_ids + 1) > size:  # grow the table in use and re-insert every id
                size *= 2
                mask = np.uint64(size - 1)
                table[:size] = -1
                for c2 in range(n_ids):
                    sl = id_hash[c2] & mask
                    while table[sl] >= 0:
                        sl = (sl + np.uint64(1)) & mask
                    table[sl] = c2
            sl = h & mask
            code = -1
            while True:
                c2 = table[sl]
                if c2 < 0:
                    break
                if id_hash[c2] == h and id_len[c2] == e - s:
                    a = np.uint64(id_start[c2])
                    b = np.uint64(s)
                    ln = np.uint64(e - s)
                    j = np.uint64(0)
                    same = True
                    while j + np.uint64(8) <= ln:  # 8 bytes at a time, then the tail
                        wa = np.uint64(0)
                        wb = np.uint64(0)
                        for r in range(8):
                            wa |= np.uint64(buf[_u(a + j + np.uint64(r))]) << np.uint64(8 * r)
                            wb |= np.uint64(buf[_u(b + j + np.uint64(r))]) << np.uint64(8 * r)
                        if wa != wb:
                            same = False
                            break
                        j += np.uint64(8)
                    while same and j < ln:
                        if buf[_u(a + j)] != buf[_u(b + j)]:
                            same = False
                        j += np.uint64(1)
                    if same:
                        code = c2
                        break
                sl = (sl + np.uint64(1)) & mask
            if code < 0:
                code = n_ids
                id_start[code] = s
                id_len[code] = e - s
                id_hash[code] = h
                table[sl] = code
                n_ids += 1
            icols[field_slot[f], row] = code
        row_line[row] = i
        counts[k] += 1
        status[i] = k
    return status, counts, offsets, fcols, icols, row_line, id_start[:n_ids].copy(), id_len[:n_ids].copy()
