"""What is wrong with a city folder: :class:`Problem` (file, field path, message) and :class:`CityError`.

Example:
    >>> str(Problem(CITY_FILE, "timezone", "unknown IANA time zone 'X'"))
    "city.yaml: timezone: unknown IANA time zone 'X'"
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, NamedTuple

CITY_FILE = "city.yaml"
DISTRICTS_FILE = "districts.geojson"
CELLS_FILE = "cells.geojson"


def is_finite_number(v: Any) -> bool:
    """An int or float (not a bool) that is finite."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class Problem(NamedTuple):
    """One problem in a city folder: the file, the field path inside it, and what is wrong.

    Example:
        >>> str(Problem("city.yaml", "sensors[12].cell", "unknown cell 'C99'"))
        "city.yaml: sensors[12].cell: unknown cell 'C99'"
        >>> str(Problem("cells.geojson", "", "missing file"))
        'cells.geojson: missing file'
    """

    file: str
    field_path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field_path}: {self.message}" if self.field_path else f"{self.file}: {self.message}"


class CityError(ValueError):
    """A city folder that cannot be used; ``problems`` lists every :class:`Problem` found.

    A :class:`ValueError`, so callers that treat bad configuration generically still catch it.

    Example:
        >>> err = CityError([Problem("city.yaml", "timezone", "unknown IANA time zone 'X'"),
        ...                  Problem("cells.geojson", "", "missing file")], where="mycity/")
        >>> print(err)
        2 problems in mycity/:
          city.yaml: timezone: unknown IANA time zone 'X'
          cells.geojson: missing file
        >>> isinstance(err, ValueError), len(err.problems)
        (True, 2)
    """

    def __init__(self, problems: Iterable[Problem], where: str = "city") -> None:
        self.problems: list[Problem] = list(problems)
        self.where = where
        n = len(self.problems)
        lines = [f"{n} problem{'s' if n != 1 else ''} in {where}:"] + [f"  {p}" for p in self.problems]
        super().__init__("\n".join(lines))
