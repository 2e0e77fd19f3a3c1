"""The distributed engine's stages see the city as of each window's end, whatever the batching
(issue 16 for the Faust topology), and carry any partial in pieces (no Kafka here: the stages
in-process, the broker tests are in test_distributed.py).

A morning stretch with accidents, grid cases and outages goes through the local pipeline in one
read (the reference) and, split by sensor over 3 partitions, through three partition stages fed in
small and in whole-partition batches, whose partials reach the merge cut into 16 KB pieces.
Every tick the merge closes has the reference's lifecycle state tables (incidents, cases, outages),
vital signs, window operators' tables and — through the shipped rule packs and the alert pipeline —
notifications; and no tick's state holds a stage, a status or an entity from after its end (the
merge used to apply lifecycle rows as it read them: a window saw the state as of the end of
whatever its partitions had sent, accidents closed before they happened).
"""
from __future__ import annotations

import polars as pl
import pytest

from brain.alerts.pipeline import AlertPipeline
from brain.alerts.routing import Subscription
from brain.alerts.rules import RuleEngine
from brain.pipeline import LIFECYCLE_KINDS, CityPipeline, PipelineConfig
from streams.alerts.service import window_tables
from streams.faust_stages import MergePipeline, PartitionPipeline, hash_partition, merge_operators, partial_pieces

SEED = 7
HOURS = 1.5
PARTITIONS = 3
STATES = [name for *_, name in LIFECYCLE_KINDS.values()]
# (sensor_freshness is made for the last tick of each pass only, by design: it follows the batching)
TABLES = ("district", "city", "anomaly", "sensor_faults", "signal_plans", "grid_unit")
SUBSCRIPTIONS = [Subscription.from_dict({"id": "all", "department": "City command", "group_by": ["incident"],
                                         "group_wait": "1m", "group_interval": "10m", "channel": {"type": "log"}})]


@pytest.fixture(scope="module")
def lines(city):
    from streams.sim import Simulator

    start = Simulator(city, seed=SEED).start_ms + 7 * 3_600_000  # the morning: accidents, cases, outages
    sim = Simulator(city, seed=SEED, start_ms=start)
    return [line for b in sim.jsonl_batches(start + int(HOURS * 3_600_000), batch_s=600) for line in b.split(b"\n") if line]


class Recorder:
    """Each closed tick's state tables, published tables and notifications, in order."""

    def __init__(self, city):
        self.engine = RuleEngine.from_path(city=city)
        self.alerts = AlertPipeline(SUBSCRIPTIONS, self.engine.inhibit_rules, correlate_rules=self.engine.correlate_rules, tick=300)
        self.ticks: dict[int, dict] = {}

    def take(self, windows) -> None:
        for w in windows:
            notes = [(n.key, n.reason, n.status, tuple(sorted((a.rule_id, a.fingerprint, a.status) for a in n.alerts)))
                     for n in self.alerts.process(self.engine.evaluate(window_tables(w), w.window_end_ms), w.window_end_ms)]
            self.ticks[w.window_end_ms] = {"states": {name: w.inputs[name] for name in STATES},
                                           "tables": {name: w.vitals[name] for name in TABLES if name in w.vitals}, "notes": notes}


def _operators(city, tmp_path_factory, name):
    return merge_operators(city, PipelineConfig(), tmp_path_factory.mktemp(name))


@pytest.fixture(scope="module")
def reference(city, lines, tmp_path_factory):
    rec = Recorder(city)
    pipe = CityPipeline(city, window_operators=_operators(city, tmp_path_factory, "local"))
    rec.take(pipe.ingest_jsonl(b"\n".join(lines)).windows)
    return rec.ticks


def _distributed(city, lines, tmp_path_factory, step: int | None, grouped: bool = False) -> tuple[dict, MergePipeline]:
    """The stretch over the partition stages (``step`` lines per batch, None: all at once) and the
    merge; ``grouped``: the pieces reach the merge in groups of 1-12 (``add_pieces``, as the merge
    agent takes a batch: ticks of several partials closed in one pass), not one by one."""
    import random

    rng = random.Random(SEED)
    held: list[bytes] = []
    rec = Recorder(city)
    merge = MergePipeline(city, partitions=PARTITIONS, window_operators=_operators(city, tmp_path_factory, f"merge{step}"))
    parts = [PartitionPipeline(city, partition=p) for p in range(PARTITIONS)]
    own = [[line for line in lines if hash_partition(line, PARTITIONS) == p] for p in range(PARTITIONS)]
    pos = [0] * PARTITIONS
    while any(pos[p] < len(own[p]) for p in range(PARTITIONS)):
        for p, pipe in enumerate(parts):  # the partitions take turns, each at its own pace
            n = len(own[p]) if step is None else step * (p + 1)
            chunk, pos[p] = own[p][pos[p]:pos[p] + n], pos[p] + n
            if chunk:
                pipe.ingest_jsonl(b"\n".join(chunk))
            for partial in pipe.take_partials():
                for piece in partial_pieces(partial, 16 << 10):
                    if not grouped:
                        rec.take(merge.add_piece(piece))
                        continue
                    held.append(piece)
                    if len(held) >= rng.randint(1, 12):
                        rec.take(merge.add_pieces(held))
                        held = []
    rec.take(merge.add_pieces(held))
    return rec.ticks, merge


@pytest.fixture(scope="module", params=[(200, False), (None, False), (200, True)],
                ids=["small-batches", "whole-partitions", "small-batches-grouped-pieces"])
def distributed(request, city, lines, tmp_path_factory):
    return _distributed(city, lines, tmp_path_factory, *request.param)


def _same(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    cols = sorted(a.columns)
    return cols == sorted(b.columns) and a.select(cols).sort(cols, nulls_last=True).equals(b.select(cols).sort(cols, nulls_last=True))


def test_the_merge_sees_each_tick_as_the_local_driver(reference, distributed):
    ticks, merge = distributed
    common = sorted(set(ticks) & set(reference))
    assert len(common) >= int(HOURS * 12) - 2, (len(common), len(ticks), len(reference))
    assert merge.counters["pieces_dropped"] == 0
    for end in common:
        for name in STATES:
            assert _same(ticks[end]["states"][name], reference[end]["states"][name]), f"{name} state differs at {end}"
        assert ticks[end]["tables"].keys() == reference[end]["tables"].keys()
        for name, frame in ticks[end]["tables"].items():
            assert _same(frame, reference[end]["tables"][name]), f"{name} differs at {end}"
    notes = [n for end in common for n in ticks[end]["notes"]]
    assert notes == [n for end in common for n in reference[end]["notes"]]
    assert notes, "a stretch that pages nobody compares no notifications"


def test_no_tick_sees_its_future(distributed):
    ticks, _ = distributed
    checked = 0
    for end, tick in ticks.items():
        for _, stages, _, name in LIFECYCLE_KINDS.values():
            frame = tick["states"][name]
            for col in [*stages.values(), "updated_ms"]:
                assert (frame[col].drop_nulls() <= end).all(), f"{name}.{col} after the tick ending {end}"
            checked += frame.height
    assert checked, "the stretch has no lifecycle state to check"
