"""A fast reader for the JSON-flow subset of YAML that machine-written city files use.

PyYAML builds every scalar in Python even with libyaml's parser: a 50k-sensor ``city.yaml`` takes
tens of seconds. Registries exported by tools (and ``citybrain city generate``) write YAML whose
lines are each either a comment, ``key: <JSON value>``, ``key:`` opening a list, or
``- <JSON value>`` (one list item); such a file is read here with the ``json`` module, one line at
a time, in a fraction of that. Anything else — block mappings, plain scalars, anchors, multi-line
values, a number YAML 1.1 would read differently (``1e5`` is a string to PyYAML, ``NaN`` too) —
returns :data:`OUTSIDE` and the caller uses the YAML parser, so the result (and every error
message) is exactly the YAML parser's whenever this reader answers.

Example:
    >>> parse('name: "X"\\nsensors:  # 2\\n- {"id": "A", "lon": 120.5}\\n- {"id": "B", "lon": 1.0}\\n')
    {'name': 'X', 'sensors': [{'id': 'A', 'lon': 120.5}, {'id': 'B', 'lon': 1.0}]}
    >>> parse("name: Demo City\\n") is OUTSIDE  # a plain scalar: YAML's job
    True
    >>> parse('x: [1e5]\\n') is OUTSIDE  # YAML 1.1 reads 1e5 as a string, JSON as a number
    True
"""
from __future__ import annotations

import json
import re
from typing import Any

OUTSIDE = object()  # the text is not in the subset: parse it as YAML

_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*):(?:[ \t]+(.*?))?[ \t]*$")
# Characters YAML's reader refuses anywhere in a stream (PyYAML's Reader.NON_PRINTABLE).
_NON_PRINTABLE = re.compile("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010ffff]")
_SIGNED_EXPONENT = re.compile(r"[eE][-+]\d")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # YAML refuses the \uD83D\uDE00 pairs that JSON joins


class _Outside(Exception):
    pass


def _float(token: str) -> float:
    # YAML 1.1's float resolver wants a '.' and a signed exponent (PyYAML reads 1e5 and 1.5e3 as strings).
    if "." not in token or (("e" in token or "E" in token) and not _SIGNED_EXPONENT.search(token)):
        raise _Outside
    return float(token)


def _constant(token: str):
    raise _Outside  # NaN / Infinity: JSON extensions that YAML reads as strings


_DECODER = json.JSONDecoder(parse_float=_float, parse_constant=_constant)


def _value(text: str) -> Any:
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        raise _Outside
    if not text or text[0] not in '{["-0123456789tfn':
        raise _Outside  # plain YAML scalars (unquoted strings, ~, yes/no...) are YAML's job
    value, end = _DECODER.raw_decode(text)
    rest = text[end:].strip()
    if rest and not rest.startswith("#"):
        raise _Outside
    if rest and not text[end:end + 1].isspace():
        raise _Outside  # "#"" glued to a value is not a YAML comment
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float, str)) and text[0] not in '"':
        # A bare top-level number or word: YAML 1.1 resolves some differently (0777, 1_000...).
        if not re.fullmatch(r"-?(0|[1-9]\d*)(\.\d+)?", text[:end]):
            raise _Outside
    return value


def parse(text: str) -> Any:
    """The document as Python data, or :data:`OUTSIDE` (see the module docstring)."""
    if _NON_PRINTABLE.search(text):
        return OUTSIDE  # YAML reports it, with its position
    out: dict[str, Any] = {}
    current: list | None = None
    opened: list[str] = []  # "key:" with items below; with none, YAML reads the key as null
    try:
        for line in text.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line.startswith("- "):
                if current is None:
                    return OUTSIDE
                current.append(_value(line[2:].strip()))
                continue
            m = _KEY.fullmatch(line)
            if not m or m.group(1) in out:
                return OUTSIDE  # indentation, flow across lines, a repeated key...
            value = m.group(2)
            if value is None or value.startswith("#"):
                current = out[m.group(1)] = []
                opened.append(m.group(1))
            else:
                current = None
                out[m.group(1)] = _value(value)
    except (_Outside, ValueError, RecursionError):
        return OUTSIDE
    if not out:
        return OUTSIDE  # an empty document is YAML's None, not {}
    for key in opened:
        if not out[key]:
            out[key] = None
    return out
