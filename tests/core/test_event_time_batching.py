"""Every window sees the city as of its own end, whatever the batching (issue 16).

One simulated stretch with accidents, grid cases and outages in it, read from a file in 64 KB, 4 MB
and whole-file chunks and fed live (the local driver with the simulator source, a batch per
simulated minute): identical history (every vital-sign table, every row), identical lifecycle
state tables (incidents, cases, outages) at every tick, identical notifications from the shipped
rule packs through the alert pipeline; and no tick's state holds a stage, a status
or an entity from after its end (a whole file in one read used to hand every tick the state as of
the end of the file: accidents already closed before they happened)."""
from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from brain.alerts.pipeline import AlertPipeline
from brain.alerts.routing import Subscription
from brain.alerts.rules import RuleEngine
from brain.pipeline import LIFECYCLE_KINDS, CityPipeline
from streams.alerts.service import window_tables
from streams.feeds import FileSource, SimulatorSource
from streams.local import LocalDriver

HOURS = 1.5
SEED = 7
STATES = [name for *_, name in LIFECYCLE_KINDS.values()]


@pytest.fixture(scope="module")
def stretch(city, tmp_path_factory):
    from streams.sim import Simulator

    start = Simulator(city, seed=SEED).start_ms + 7 * 3_600_000  # the morning: accidents, cases, outages
    sim = Simulator(city, seed=SEED, start_ms=start)
    until = start + int(HOURS * 3_600_000)
    path = tmp_path_factory.mktemp("stretch") / "stretch.jsonl"
    with path.open("wb") as fh:
        for chunk in sim.jsonl_batches(until, batch_s=3600):
            fh.write(chunk)
    return start, until, path


def history(out: Path, last_tick_ms: int) -> Counter:
    """Every history row up to the tick ending at ``last_tick_ms``, as (table, hash of its columns)."""
    rows: Counter = Counter()
    for table in sorted(p for p in (out / "history").iterdir() if p.is_dir()):
        frame = pl.concat([pl.read_parquet(f) for f in sorted(table.glob("*.parquet"))], how="diagonal_relaxed")
        tick = "tick_end_ms" if "tick_end_ms" in frame.columns else "window_end_ms"
        frame = frame.filter(pl.col(tick) <= last_tick_ms).select(sorted(frame.columns))
        rows.update((table.name, h) for h in frame.hash_rows(seed=0).to_list())
    return rows


#: every category, every severity: whatever any rule raises is paged, grouped per incident
SUBSCRIPTIONS = [Subscription.from_dict({"id": "all", "department": "City command", "group_by": ["incident"],
                                         "group_wait": "1m", "group_interval": "10m", "channel": {"type": "log"}})]


def _run(city, source, out: Path, last_tick_ms: int, **kw):
    """History written under ``out``, each tick's lifecycle state tables, and the notifications."""
    states: dict[int, dict[str, pl.DataFrame]] = {}
    engine = RuleEngine.from_path(city=city)
    alerts = AlertPipeline(SUBSCRIPTIONS, engine.inhibit_rules, correlate_rules=engine.correlate_rules, tick=300)
    notes: list[tuple] = []

    def grab(w):
        states[w.window_end_ms] = {name: w.inputs[name] for name in STATES}
        if w.window_end_ms <= last_tick_ms:
            for n in alerts.process(engine.evaluate(window_tables(w), w.window_end_ms), w.window_end_ms):
                notes.append((w.window_end_ms, n.reason, n.status, tuple(sorted((a.rule_id, a.fingerprint, a.status) for a in n.alerts))))

    driver = LocalDriver(CityPipeline(city), source, out, checkpoint_every_s=1e9, window_handlers=[grab], **kw)
    asyncio.run(driver.run())
    assert driver.pipeline.invariant_holds()
    return history(out, last_tick_ms), {end: s for end, s in states.items() if end <= last_tick_ms}, notes


def _stages(kind: str) -> list[str]:
    return list(LIFECYCLE_KINDS[kind][1].values())


@pytest.fixture(scope="module")
def runs(city, stretch, tmp_path_factory):
    start, until, path = stretch
    out = {}
    for name, chunk in (("64KB", 64 << 10), ("4MB", 4 << 20), ("whole", path.stat().st_size + 1)):
        source = FileSource(path)
        source.replay.chunk_bytes = chunk
        out[name] = _run(city, source, tmp_path_factory.mktemp(name), until)
    # Live: one batch per simulated minute; run a little past the stretch so its last tick closes.
    out["live"] = _run(city, SimulatorSource(city, seed=SEED, start_ms=start), tmp_path_factory.mktemp("live"), until,
                       until_ms=until + 600_000)
    return out


def test_the_stretch_has_lifecycle_events(runs):
    _, states, notes = runs["whole"]
    assert notes, "a stretch that pages nobody compares no notifications"
    last = states[max(states)]
    assert last["incidents"].height and last["cases"].height, "a stretch with no lifecycle events tests nothing"
    final = dict(last["incidents"].select("incident_id", "status").iter_rows())
    # an incident seen earlier in another stage than at the end: reading ahead would show
    assert any(final[i] != s for t in states.values() for i, s in t["incidents"].select("incident_id", "status").iter_rows())


@pytest.mark.parametrize("name", ["64KB", "4MB", "live"])
def test_history_and_state_are_the_same_however_the_input_is_cut(runs, name):
    whole_history, whole_states, whole_notes = runs["whole"]
    rows, states, notes = runs[name]
    assert max(whole_states) == max(states)  # the file's last tick is the stretch's end: end of input closed it, no more
    assert sorted(states) == sorted(whole_states)
    for end in whole_states:
        for table in STATES:
            a, b = whole_states[end][table], states[end][table]
            assert a.sort(a.columns[0]).equals(b.sort(b.columns[0])), f"{table} as of {end} differs ({name})"
    assert rows == whole_history, f"history differs ({name})"
    assert notes == whole_notes, f"notifications differ ({name})"


def test_no_tick_sees_its_future(runs):
    _, states, _ = runs["whole"]
    for end, tables in states.items():
        for kind, (id_col, stages, _, name) in LIFECYCLE_KINDS.items():
            frame = tables[name]
            for col in stages.values():
                assert (frame[col].drop_nulls() <= end).all(), f"{name}.{col} after the tick ending {end}"
            assert (frame["updated_ms"] <= end).all()
