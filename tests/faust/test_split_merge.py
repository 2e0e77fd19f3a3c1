"""The split merge (streams.faust_shards): corridor shards beside the city merge.

In process: two partition stages, a city merge without green waves and two corridor shards fed the
partials restricted to their sensors give the local pipeline's tables, the shards' ``signal_plans``
together being the local table. Against a real broker (tansu): two ``citybrain worker --merge-shards
2`` processes, one killed with SIGKILL mid-stream and started again, publish the local pipeline's
tables and notifications (the module fixtures of test_distributed are the reference).
"""
from __future__ import annotations

import asyncio
from collections import Counter

import numpy as np
import pytest

from brain.pipeline import CityPipeline, PipelineConfig
from streams.faust_shards import ShardPipeline, ShardPlan, shard_operators
from streams.faust_stages import MergePipeline, PartitionPipeline, hash_partition, merge_operators, partial_pieces
from streams.greenwave_operator import GreenWaveOperator
from streams.sim import Simulator
from tests.faust.test_distributed import (  # noqa: F401 (module fixtures: the recorded stretch and the local reference)
    PARTITIONS, TABLES, Workers, _all_in, _notifications, _redis_url, lines, local)
from tests.faust.workers import produce, read_topic, table_rows

SHARDED = ("signal_plans",)


def _rows(frame) -> list[str]:
    return table_rows(frame.to_dicts())


def test_shards_and_city_merge_in_process_equal_local(city, tmp_path):
    sim = Simulator(city, seed=int(np.random.default_rng().integers(1 << 30)))
    lines = [l for b in sim.jsonl_batches(sim.start_ms + 4 * 3600_000, batch_s=60) for l in b.split(b"\n") if l]
    config = PipelineConfig()
    local = CityPipeline(city, config, window_operators=merge_operators(city, config, tmp_path / "local"))
    ref = [w for i in range(0, len(lines), 3000) for w in local.ingest_jsonl(b"\n".join(lines[i:i + 3000])).windows]
    plan = ShardPlan(city, 2)
    assert sorted(c for cs in plan.corridors for c in cs) == sorted(c.id for c in city.corridors)
    ops = [op for op in merge_operators(city, config, tmp_path / "city") if not isinstance(op, GreenWaveOperator)]
    merge = MergePipeline(city, config, partitions=2, window_operators=ops)
    shards = [ShardPipeline(city, config, partitions=2, window_operators=shard_operators(city, tmp_path / "shards", cs))
              for cs in plan.corridors]
    parts = [PartitionPipeline(city, config, partition=p) for p in (0, 1)]
    merged, sharded = [], [[] for _ in shards]
    for i in range(0, len(lines), 5000):  # the two partitions interleaved, batch by batch
        for p, pipe in enumerate(parts):
            pipe.ingest_jsonl(b"\n".join(l for l in lines[i:i + 5000] if hash_partition(l, 2) == p))
            for partial in pipe.take_partials():
                merged += [w for m in partial_pieces(partial, 32 << 10) for w in merge.add_piece(m)]
                for k, sub in enumerate(plan.restrict(partial, pipe)):
                    # a shard's partial holds only its corridors' sensors
                    assert all(len(parts_[0]) <= len(plan.keys(pipe, k)[kind]) for kind, by_end in sub.windows.items()
                               for parts_ in by_end.values())
                    sharded[k] += [w for m in partial_pieces(sub, 32 << 10) for w in shards[k].add_piece(m)]
    ends = [w.window_end_ms for w in merged]
    assert ends == [w.window_end_ms for w in ref][:len(ends)] and len(ends) >= 40
    for k in range(len(shards)):
        assert [w.window_end_ms for w in sharded[k]] == ends
        assert "district" not in sharded[k][0].vitals, "a shard built vital signs"
    plans = 0
    for t, w in enumerate(merged):
        for name in TABLES:
            if name not in SHARDED:
                assert _rows(w.vitals[name]) == _rows(ref[t].vitals[name]), (name, w.window_end_ms)
        assert "signal_plans" not in w.vitals
        union = sorted(r for k in range(len(shards)) for r in _rows(sharded[k][t].vitals["signal_plans"]))
        assert union == _rows(ref[t].vitals["signal_plans"]), w.window_end_ms
        plans += len(union)
    assert plans > 0, "no plan in the stretch: nothing compared"


def _published_split(broker: str, topics: tuple[str, str]) -> dict:
    """Published tables by (table, window end); a shard's ``signal_plans:<end>:s<k>`` messages of
    one window joined. A window published again (at-least-once) must repeat the same rows."""
    from streams.faust_driver import bootstrap_of, decode_vitals_message

    by_key: dict[str, list[str]] = {}
    for key, value in asyncio.run(read_topic(bootstrap_of(broker), topics[0])):
        msg = decode_vitals_message(value)
        rows = table_rows(msg["rows"])
        assert by_key.setdefault(key.decode(), rows) == rows, f"{key} repeated with other rows"
    tables: dict[tuple[str, int], list[str]] = {}
    for key, rows in by_key.items():
        name, end, *shard = key.split(":")
        assert (name in SHARDED) == bool(shard), f"{key}: green-wave plans come from the shards, the rest from the city merge"
        tables.setdefault((name, int(end)), []).extend(rows)
    return {k: sorted(v) for k, v in tables.items()}


def _shards_upto(workers: Workers, shards: int) -> int:
    """The oldest newest-merged tick over the corridor shards (-1 until each has merged one)."""
    import json

    from streams.faust_state import stage_path

    upto = []
    for k in range(shards):
        try:
            upto.append(json.loads(stage_path(workers.out, workers.app, f"shard{k}").with_suffix(".json").read_text())["merged_upto"])
        except (FileNotFoundError, ValueError, KeyError):
            return -1
    return min(-1 if u is None else u for u in upto)


def _assert_matches_local(status, n_lines, local, workers, broker):
    """Every record applied once, the local pipeline's accounting, tables for every window both closed
    and its notifications, none sent twice; returns the compared window ends and the published tables."""
    counters, ref_tables, _, ref_notes = local
    assert status["counters"]["records_in"] == n_lines, "a record was applied twice or lost"
    got = {k: v for k, v in status["counters"].items() if k not in ("windows_closed", "ticks_closed")}
    assert got == {k: v for k, v in counters.items() if k != "windows_closed"}, "accounting differs from the local pipeline"
    tables = _published_split(broker, workers.topics)
    ends = sorted({end for (name, end) in tables if name == "city"} & {end for (_, end) in ref_tables})
    assert len(ends) >= 60 // 5 - 2, ends
    for name in TABLES:
        for end in ends:
            assert tables.get((name, end)) == ref_tables.get((name, end)), f"{name} differs for the window ending {end}"
    notes = [n for n in _notifications(workers.redis_url) if int(n[4]) <= ends[-1]]
    expected = [n for n in ref_notes if int(n[4]) <= ends[-1]]
    assert expected and [k for k, n in Counter(n[0] for n in notes).items() if n > 1] == [], "a notification went out twice"
    assert sorted(notes) == sorted(expected), "notifications differ from the local pipeline's"
    return ends, tables


def test_split_merge_on_two_workers_with_a_kill_matches_local_pipeline(broker, lines, local, tmp_path, redis_socket):
    """Two workers, every stage on each (``--merge-shards 2``: the city merge on one of them, the two
    corridor shards wherever Faust puts them); worker 1 is SIGKILLed mid-stream and started again."""
    workers = Workers(broker, tmp_path / "split", _redis_url(redis_socket, 7), app="cbsplit")
    args = ("--merge-shards", "2")
    try:
        produce(lines, tmp_path / "input.jsonl", broker, PARTITIONS)
        for i in (0, 1):
            workers.start(i, args=args)
        workers.wait(lambda s: s["merged_upto"] is not None and s["records_in"] >= len(lines) // 3, "a third in and merged")
        workers.kill(1)
        workers.start(1, args=args)
        status = workers.wait(lambda s: _all_in(len(lines))(s) and _shards_upto(workers, 2) >= s["merged_upto"],
                              "every record in, merged by the city merge and by both corridor shards (2 workers)")
        ends, tables = _assert_matches_local(status, len(lines), local, workers, broker)
        assert sum(len(tables.get(("signal_plans", e), [])) for e in ends) > 0, "no plan compared"
    finally:
        workers.stop_all()


def test_split_merge_on_three_workers_one_killed_for_good_matches_local_pipeline(broker, lines, local, tmp_path, redis_socket):
    """Three workers with three shards (the demo city's two corridors: one shard plans nothing);
    worker 2 is SIGKILLed mid-stream and not started again, so whatever it held — input
    partitions, shards, perhaps the city merge — moves to the two left by Faust's rebalance and
    resumes from its checkpoint: the same tables and notifications as the local pipeline."""
    workers = Workers(broker, tmp_path / "split3", _redis_url(redis_socket, 8), app="cbsplit3")
    args = ("--merge-shards", "3")
    try:
        produce(lines, tmp_path / "input.jsonl", broker, PARTITIONS)
        for i in (0, 1, 2):
            workers.start(i, args=args)
        workers.wait(lambda s: s["merged_upto"] is not None and s["records_in"] >= len(lines) // 3 and _shards_upto(workers, 3) >= 0,
                     "a third in, merged by the city merge and every shard")
        workers.kill(2)
        status = workers.wait(lambda s: _all_in(len(lines))(s) and _shards_upto(workers, 3) >= s["merged_upto"],
                              "every record in, merged by the city merge and the three shards (2 of 3 workers left)")
        _assert_matches_local(status, len(lines), local, workers, broker)
    finally:
        workers.stop_all()
