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


def lifecycle_steps(update):
    """A hypothesis strategy of steps over ``update`` rows: updates, ticks (stacked), ticks back,
    prunes and checkpoint round trips, as :func:`tick_ends` and the tests read them."""
    from hypothesis import strategies as st

    return st.one_of(
        st.tuples(st.just("update"), st.lists(update, min_size=1, max_size=6)),
        st.tuples(st.just("tick"), st.lists(st.integers(1, 4), min_size=1, max_size=3)),  # minutes ahead, stacked ticks
        st.tuples(st.just("back"), st.integers(1, 12).map(lambda m: 5 * m)),
        st.tuples(st.just("prune"), st.integers(0, 300)),
        st.tuples(st.just("checkpoint"), st.none()),
    )


def maintenance_step(kind: str, arg, tables, minute_ms: int = 60_000) -> bool:
    """Apply a ``"prune"`` (at ``arg`` minutes) or ``"checkpoint"`` (state round trip) step to every
    lifecycle table in ``tables``; True when the step was one of those (the caller moves on)."""
    if kind == "prune":
        for table in tables:
            table.prune(arg * minute_ms)
        return True
    if kind == "checkpoint":
        for table in tables:
            table.load(table.state())
        return True
    return False
