"""What a person may change, decided in one place for the API and the local command line.

A silence must name at least one concrete label (``name=value``, non-empty value): ``rule=~.*``,
negative matchers alone, or ``district=`` (which matches every alert lacking the label) would
mute the whole city. It must last more than 0 and at most ``max_h`` hours.

Example:
    >>> check_silence(["district=nanhu", "rule=~jam.*"], "2h", max_h=24)
    7200000
    >>> check_silence(["rule=~.*"], "1h", max_h=24)
    Traceback (most recent call last):
    ...
    dashboards.api.policy.PolicyError: matchers: a silence needs at least one concrete label matcher (name=value), so it cannot mute the whole city
"""
from __future__ import annotations

from brain.alerts.model import parse_duration_ms, parse_matchers


class PolicyError(ValueError):
    """A change refused by policy; ``field`` names what to fix."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def concrete(matcher) -> bool:
    """A matcher that names one label value (``name=value``): what makes a silence targeted."""
    return matcher.op == "=" and matcher.value.strip() != ""


def check_silence(matchers: list[str], duration, max_h: float) -> int:
    """The silence's duration in ms, if ``matchers`` and ``duration`` are within policy (else :class:`PolicyError`)."""
    try:
        parsed = parse_matchers(matchers)
    except ValueError as exc:
        raise PolicyError("matchers", str(exc)) from None
    if not any(concrete(m) for m in parsed):
        raise PolicyError("matchers", "a silence needs at least one concrete label matcher (name=value), "
                                      "so it cannot mute the whole city")
    try:
        dur = parse_duration_ms(duration)
    except ValueError as exc:
        raise PolicyError("duration", str(exc)) from None
    if not 0 < dur <= int(max_h * 3_600_000):
        raise PolicyError("duration", f"a silence lasts more than 0 and at most {max_h:g} h, got {duration!r}")
    return dur
