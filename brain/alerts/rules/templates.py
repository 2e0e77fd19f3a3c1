"""Summary templates of alert rules: bounds checked when a pack loads, rendering per candidate.

A rule's ``summary`` is a ``str.format`` template over the row's columns, the alert's labels,
``value`` and ``threshold``. Rules are data, not code: a width past :data:`MAX_FIELD_WIDTH` or a
nested placeholder is refused at load, a rendered summary is cut at :data:`MAX_SUMMARY_CHARS`, and
a placeholder with no value stays visible as ``{name}`` instead of raising.

:class:`Template` is the compiled form the rule compiler uses once per reload: the field names in
order and a positional twin of the text (``"TTI {0:.2f} on {1}"``), so a row renders with one C
call on a tuple instead of a dict per row. When that call fails (a ``None`` under a numeric spec,
a string under ``d``), the row falls back to :func:`render_summary`, the forgiving reference, so
both give the same text for every row.

Example:
    >>> t = Template("TTI {value:.2f} on {segment_id} ({missing})")
    >>> t.names
    ('value', 'segment_id', 'missing')
    >>> t.render(2.4, "S1", "{missing}")
    'TTI 2.40 on S1 ({missing})'
    >>> render_summary("TTI {value:.2f} on {segment_id}", {"value": None, "segment_id": "S1"})
    'TTI None on S1'
    >>> check_template_bounds("{x:>300000000}")
    Traceback (most recent call last):
    ...
    ValueError: summary placeholder {x:>300000000}: width or precision 300000000 is more than 200
"""
from __future__ import annotations

import re
import string

#: Bounds of a summary template: a width or precision past MAX_FIELD_WIDTH (``{x:>300000000}``)
#: would make every alert a gigabyte string; a rendered summary is cut at MAX_SUMMARY_CHARS.
MAX_FIELD_WIDTH = 200
MAX_TEMPLATE_CHARS = 2000
MAX_SUMMARY_CHARS = 2000
_SPEC_NUMBER = re.compile(r"\d+")


def check_template_bounds(text: str) -> None:
    """Refuse a summary template whose output could be unbounded (rules are data, not code)."""
    if len(text) > MAX_TEMPLATE_CHARS:
        raise ValueError(f"summary is {len(text)} characters long (at most {MAX_TEMPLATE_CHARS})")
    for _, name, spec, _ in string.Formatter().parse(text):
        if not spec:
            continue
        if "{" in spec:
            raise ValueError(f"summary placeholder {{{name}:{spec}}}: a nested placeholder in a format spec is not allowed")
        big = [int(n) for n in _SPEC_NUMBER.findall(spec) if int(n) > MAX_FIELD_WIDTH]
        if big:
            raise ValueError(f"summary placeholder {{{name}:{spec}}}: width or precision {big[0]} is more than {MAX_FIELD_WIDTH}")


def template_fields(text: str) -> list[str]:
    """The placeholder names of a template, in order (an unparsable template is a ValueError naming it)."""
    try:  # "{}" gives "" (a positional field: refused by the rule's check, it would read no column)
        return [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        raise ValueError(f"summary {text!r}: {exc}") from None


class _Forgiving(string.Formatter):
    """``str.format`` that leaves unknown placeholders visible instead of raising."""

    def get_value(self, key, args, kwargs):
        if isinstance(key, str) and key not in kwargs:
            return "{" + key + "}"
        return super().get_value(key, args, kwargs)

    def format_field(self, value, spec):
        try:
            return super().format_field(value, spec)
        except (ValueError, TypeError):
            return str(value)


_FORGIVING = _Forgiving()


class Fields(dict):
    """Row fields for ``str.format_map``; an unknown placeholder stays visible as ``{name}``.

    >>> "{a} {b}".format_map(Fields(a=1))
    '1 {b}'
    """

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def cut_summary(summary: str) -> str:
    """Long column values (a free-text field) stay bounded too."""
    if len(summary) > MAX_SUMMARY_CHARS:
        return summary[: MAX_SUMMARY_CHARS - 1] + "…"
    return summary


def render_summary(template: str, fields: dict) -> str:
    """The reference rendering: ``format_map`` (C), the forgiving formatter only for odd rows (None with
    a format spec…). Not yet cut to :data:`MAX_SUMMARY_CHARS` (see :func:`cut_summary`)."""
    if not isinstance(fields, Fields):
        fields = Fields(fields)
    try:
        return template.format_map(fields)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return _FORGIVING.format(template, **fields)


class Template:
    """A summary template compiled once per reload: its field names and a positional twin.

    ``positional`` is None when the template has a placeholder that is not a plain name (``{}``,
    ``{0}``): such a template is rendered by :func:`render_summary` on every row.

    >>> Template("{{literal}} {a!r:>5}").positional
    '{{literal}} {0!r:>5}'
    """

    __slots__ = ("text", "names", "positional")

    def __init__(self, text: str):
        self.text = text
        parts = []
        names: list[str] = []
        ok = True
        for literal, name, spec, conv in string.Formatter().parse(text):
            parts.append(literal.replace("{", "{{").replace("}", "}}"))
            if name is None:
                continue
            if not name.isidentifier():
                ok = False
                break
            parts.append("{" + str(len(names)) + ("!" + conv if conv else "") + (":" + spec if spec else "") + "}")
            names.append(name)
        self.names = tuple(names)
        self.positional = "".join(parts) if ok else None

    def render(self, *args) -> str:
        """The text with ``args`` in the order of :attr:`names` (raises where ``format_map`` would)."""
        return self.positional.format(*args)  # type: ignore[union-attr]
