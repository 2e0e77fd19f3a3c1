"""How deeply a JSON text nests brackets, without parsing it (so without recursion).

Parsers recurse per nesting level; a line or file nested thousands deep exhausts the stack
(``RecursionError``) before it can be refused. Every reader of untrusted JSON (the record decoder,
the city loader) measures the depth first with :func:`nesting_depth`, in C loops and numpy.

Example:
    >>> nesting_depth(b'{"a":[1,{"b":"]]]"}]}'), nesting_depth(b"[" * 100000)
    (3, 100000)
"""
from __future__ import annotations

import re

import numpy as np

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_OPEN, _CLOSE = np.frombuffer(b"[{", np.uint8), np.frombuffer(b"]}", np.uint8)


def nesting_depth(line: bytes) -> int:
    """How deeply brackets nest in a JSON line, brackets inside strings not counted (an unterminated
    string counts its brackets: the line is refused either way).

    >>> nesting_depth(b'{"a":[1,{"b":"]]]"}]}'), nesting_depth(b'[]'), nesting_depth(b'"x"')
    (3, 1, 0)
    """
    outside = np.frombuffer(_JSON_STRING.sub(b"", line), dtype=np.uint8)
    step = np.isin(outside, _OPEN).astype(np.int64) - np.isin(outside, _CLOSE)
    return int(np.cumsum(step).max()) if len(step) else 0
