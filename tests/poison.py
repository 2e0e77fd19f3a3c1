"""Poison input for the readers: the fuzzer's seeds as hypothesis strategies, and a seeded mutator.

Each strategy draws one *line* (bytes without ``\\n``) of a kind that has broken a reader before:
deep nesting in an unknown field (a ``RecursionError`` in msgspec), lines far past the size limit,
bytes that are not UTF-8, ``NaN``/``Infinity``/huge numbers, NUL bytes, two objects on one line,
whitespace-only lines. :func:`mutate` applies the same damage at random to real records, for the
bounded fuzz run in ``tests/core/test_poison_ingest.py``.

:func:`expected_records` says how many records a buffer holds by the feed's rule: one per line,
except blank (whitespace-only) lines, which are not records.

Example:
    >>> import random
    >>> line = b'{"kind":"noise","sensor_id":"NS-01","ts_ms":1,"laeq_db":55.0}'
    >>> bad = mutate(line, random.Random(1))
    >>> isinstance(bad, bytes) and b"\\n" not in bad
    True
    >>> expected_records(b"a\\n\\r\\n  \\n{}{}\\n", max_line_bytes=1000)
    2
"""
from __future__ import annotations

import random

import msgspec
from hypothesis import strategies as st

GOOD = {"kind": "noise", "sensor_id": "NS-01", "ts_ms": 1_780_243_200_000, "laeq_db": 55.0}
GOOD_LINE = msgspec.json.encode(GOOD)


def expected_records(buf: bytes, max_line_bytes: int) -> int:
    """Records in ``buf`` by the feed's rule: every line that is not blank, and every line too long
    to read (refused whatever it holds)."""
    lines = buf.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return sum(1 for line in lines if len(line) > max_line_bytes or line.strip())


def _with_field(value: bytes) -> bytes:
    return GOOD_LINE[:-1] + b',"extra":' + value + b"}"


def deep_nesting(max_depth: int = 3000) -> st.SearchStrategy[bytes]:
    """An otherwise good record whose unknown field nests ``[`` ``n`` deep (closed or not)."""
    return st.builds(lambda n, closed: _with_field(b"[" * n + (b"]" * n if closed else b"")), st.integers(1, max_depth), st.booleans())


def nested_dicts(max_depth: int = 3000) -> st.SearchStrategy[bytes]:
    return st.integers(1, max_depth).map(lambda n: _with_field(b'{"a":' * n + b"1" + b"}" * n))


def huge_line(limit: int) -> st.SearchStrategy[bytes]:
    """A line around the size limit: a record padded with a long string, or a run of one byte."""
    pad = st.integers(limit - 200, limit + 200)
    return st.one_of(
        pad.map(lambda n: _with_field(b'"' + b"x" * n + b'"')),
        st.builds(lambda n, c: c * n, pad, st.sampled_from([b"[", b" ", b"a", b"\x00", b"9"])),
    )


def invalid_utf8() -> st.SearchStrategy[bytes]:
    bad = st.sampled_from([b"\xff", b"\xfe\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"])
    return st.builds(lambda b, where: GOOD_LINE.replace(b"NS-01", b"NS-" + b) if where else GOOD_LINE[:20] + b + GOOD_LINE[20:],
                     bad, st.booleans())


def nan_infinity() -> st.SearchStrategy[bytes]:
    value = st.sampled_from([b"NaN", b"-NaN", b"Infinity", b"-Infinity", b"inf", b"1e999", b"-1e999", b"1e-999",
                             b"9" * 400, b"-0", b"0x10", b"1.", b".5", b"01"])
    return value.map(lambda v: GOOD_LINE.replace(b"55.0", v))


def null_bytes() -> st.SearchStrategy[bytes]:
    return st.builds(lambda i: GOOD_LINE[:i] + b"\x00" + GOOD_LINE[i:], st.integers(0, len(GOOD_LINE))) | st.just(
        GOOD_LINE.replace(b"NS-01", b"NS\\u0000-01"))


def mixed_objects() -> st.SearchStrategy[bytes]:
    """Two or more values on one line (objects, or an object and a scalar)."""
    other = st.sampled_from([GOOD_LINE, b"{}", b"1", b'"x"', b"[]", b"null", GOOD_LINE.replace(b"1780243200000", b"1780243260000")])
    return st.builds(lambda xs, sep: sep.join([GOOD_LINE, *xs]), st.lists(other, min_size=1, max_size=3),
                     st.sampled_from([b"", b" ", b"\t", b"\r"]))


def whitespace_only() -> st.SearchStrategy[bytes]:
    return st.text(alphabet=" \t\r\x0b\x0c", min_size=0, max_size=8).map(str.encode)


def poison_line(limit: int = 4096) -> st.SearchStrategy[bytes]:
    """Any one of the seeds above, or a good line."""
    return st.one_of(deep_nesting(), nested_dicts(), huge_line(limit), invalid_utf8(), nan_infinity(), null_bytes(),
                     mixed_objects(), whitespace_only(), st.just(GOOD_LINE))


# --- the mutator of the bounded fuzz run --------------------------------------------------------
_SNIPPETS = [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"\x00", b"\xff\xfe", b"\xc3", b"{}", b"[]", b'"', b"\\",
             b"\\u0000", b"\\ud800", b",", b":", b"}", b"{", b"null", b"true", b'"kind":"incident"', b"\r", b"\t"]


def mutate(line: bytes, rng: random.Random, limit: int = 4096) -> bytes:
    """One random kind of damage to ``line`` (never adds a ``\\n``: one line stays one line)."""
    op = rng.randrange(12)
    n = len(line)
    if op == 0 and n:  # flip a byte
        i = rng.randrange(n)
        out = line[:i] + bytes([rng.randrange(256)]) + line[i + 1:]
    elif op == 1:  # insert a snippet
        i = rng.randrange(n + 1)
        out = line[:i] + rng.choice(_SNIPPETS) + line[i:]
    elif op == 2 and n:  # truncate
        out = line[: rng.randrange(n)]
    elif op == 3:  # two objects on one line
        out = line + rng.choice([b"", b" ", b"\r"]) + line
    elif op == 4:  # deep nesting in an unknown field
        depth = rng.choice([10, 63, 64, 65, 200, 999, 1000, 5000, 20000])
        out = line[:-1] + b',"x":' + b"[" * depth + b"]" * rng.choice([0, depth]) + b"}"
    elif op == 5:  # too long
        out = line[:-1] + b',"pad":"' + b"y" * rng.choice([limit - len(line), limit, limit * 3]) + b'"}'
    elif op == 6:  # whitespace only
        out = rng.choice([b"", b" ", b"\r", b"\t \r", b"\x0b"])
    elif op == 7:  # a number replaced
        out = line.replace(b"55.0", rng.choice([b"NaN", b"1e999", b"-0", b"9" * 30, b"1e-400", b'"55"']))
    elif op == 8:  # a string field's bytes made invalid UTF-8
        out = line.replace(b'"NS', b'"\xff\xfeNS', 1)
    elif op == 9:  # delete a span
        i = rng.randrange(n + 1)
        out = line[:i] + line[i + rng.randrange(1, 20):]
    elif op == 10:  # duplicate key
        out = line[:-1] + b',"ts_ms":1}'
    else:  # several mutations at once
        out = mutate(mutate(line, rng, limit), rng, limit)
    return out.replace(b"\n", b" ")
