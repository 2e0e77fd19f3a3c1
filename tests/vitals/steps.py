"""The tick clock the differential lifecycle tests share: a step is a list of tick gaps (in 5-minute
windows) or ``("back", minutes)``, a tick asked again for an earlier time (a restarted stacked pass)."""
from __future__ import annotations


def tick_ends(kind: str, arg, now_ms: int, minute_ms: int = 60_000) -> tuple[int, list[int]]:
    """``(now_ms, tick ends)`` after one step: ``"back"`` goes ``arg`` minutes back (not before the first
    minute) and asks for that one tick; any other kind advances ``5 * m`` minutes per ``m`` in ``arg``."""
    if kind == "back":
        now_ms = max(minute_ms, now_ms - arg * minute_ms)
        return now_ms, [now_ms]
    ends = []
    for m in arg:
        now_ms += m * 5 * minute_ms
        ends.append(now_ms)
    return now_ms, ends
