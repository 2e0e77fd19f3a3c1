"""Versioned standard tables (data, not code) and their loader.

Each YAML file in this folder is one edition of one standard, named by its ``standard`` key:
air quality breakpoints (``hj633-2012``), noise limits (``gb3096-2008``), congestion levels
(``db11t785-2011``). A revised edition is a new file; callers choose it by name. Files are read
once per process and checked for shape (monotone breakpoints, known keys) by the module that
uses it. A table outside the package can be named by its file path.

Example:
    >>> t = load_table("hj633-2012")
    >>> t["breakpoints"]["pm25_24h"]["conc"][:3]
    [0, 35, 75]
    >>> sorted(available_tables())
    ['db11t785-2011', 'gb3096-2008', 'hj633-2012']
"""
from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import yaml


@functools.cache
def _index() -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in resources.files("brain.vitals.tables").iterdir():
        if entry.name.endswith((".yaml", ".yml")):
            data = yaml.safe_load(entry.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or "standard" not in data:
                raise ValueError(f"standard table {entry.name} has no 'standard' key")
            out[str(data["standard"])] = entry.name
    return out


def available_tables() -> tuple[str, ...]:
    """Names of the standard tables shipped with the package.

    >>> "gb3096-2008" in available_tables()
    True
    """
    return tuple(_index())


@functools.cache
def load_table(standard: str) -> dict:
    """The parsed table for ``standard`` (cached; treat as read-only).

    ``standard`` is a shipped table's name, or the path of a YAML file with the same layout (a
    local or draft edition, e.g. a revised HJ 633 before it ships here).
    """
    if standard.endswith((".yaml", ".yml")):
        path = Path(standard)
        if not path.is_file():
            raise ValueError(f"standard table file {standard!r} does not exist")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or "standard" not in data:
            raise ValueError(f"standard table file {standard!r} has no 'standard' key")
        return data
    index = _index()
    if standard not in index:
        raise ValueError(f"unknown standard table {standard!r}; available: {', '.join(sorted(index))}")
    text = resources.files("brain.vitals.tables").joinpath(index[standard]).read_text(encoding="utf-8")
    return yaml.safe_load(text)
