"""The split merge: corridor shards beside the city merge (``citybrain worker --merge-shards S``).

One merge worker was 75-88 % of the distributed engine's CPU in a catch-up (bench/faust_scale.py),
so more workers did not catch up faster. Green-wave replanning was the largest single item of the
merge (17 % of its samples) and, unlike the vital signs, it needs nothing city-wide: a corridor is
planned from its own segments' detector volumes, by a replanner of its own. So with ``S`` shards the
corridors are dealt over the ``S`` partitions of ``<app>.shards`` and each shard is a merge stage of
its own — :class:`ShardPipeline`: it merges the partition stages' partials restricted to the sensors
on its corridors' segments, closes a tick when every input partition has closed it (the same rule
as the city merge), and runs only the green-wave operator of its corridors. Faust assigns the shard
partitions to whichever workers subscribe to the topic and moves them on a rebalance; a shard's
state is checkpointed per shard (``<out>/faust-<app>-shard<k>.ckpt``), so it moves with its
partition, as every other stage's does::

    citybrain.records (P)      <app>.partials (1)                          citybrain.vitals
    ┌────────────────────┐     all sensors    ┌──────────────────────────┐  district, city, anomaly,
    │ partition stage xP  │──────────────────►│ city merge (x1): vital    │─► sensor_faults, grid_unit
    │ (any worker)        │                   │ signs, anomaly, faults,   │   "<table>:<end>"
    │                     │                   │ cockpit, alert rules and  │─► Redis: alerts, outboxes
    │                     │                   │ the alert pipeline        │
    │                     │  <app>.shards (S) └──────────────────────────┘
    │                     │  shard k: sensors  ┌──────────────────────────┐
    │                     │──────────────────► │ corridor shard k (xS, any │─► signal_plans
    └────────────────────┘  of its corridors  │ worker): green waves of   │   "signal_plans:<end>:s<k>"
                                               │ its corridors, plan files │─► <out>/signal_plans/
                                               └──────────────────────────┘

The union over the shards of a window's ``signal_plans`` rows is the local driver's table (each
corridor's replanner sees the same volumes tick by tick). No alert rule reads ``signal_plans``, so
the city merge's alerts are unchanged. What stays in the city merge and why: the district and city
vital signs are not sums of per-district parts (a segment's vehicle-km uses the city's mean volume
per lane; city figures are computed over all the city's data), and the anomaly and fault operators
compare series across districts' sensors — splitting them needs mergeable aggregates first.

Example (the demo city's two corridors on two shards; shard partials keep only their sensors):
    >>> from brain.city import demo_city_path, load_city
    >>> from streams.faust_stages import PartitionPipeline
    >>> city = load_city(demo_city_path())
    >>> plan = ShardPlan(city, 2)
    >>> plan.corridors
    [['jiefang'], ['qiutao']]
    >>> pipe = PartitionPipeline(city)
    >>> [len(plan.keys(pipe, k)["traffic"]) > 0 for k in range(2)]
    [True, True]
"""
from __future__ import annotations

import numpy as np

from streams.faust_stages import MergePipeline, Partial

#: The ``signal_plans`` table is published by the shards, not the city merge, when there are shards.
SHARD_TABLES = ("signal_plans",)


def shards_topic_name(app_id: str) -> str:
    """The corridor shards' input: one partition per shard (Faust assigns them among workers)."""
    return f"{app_id}.shards"


def shard_stage(shard: int) -> str:
    """The name of shard ``shard``'s checkpoint (:func:`streams.faust_state.stage_path`)."""
    return f"shard{int(shard)}"


class ShardPlan:
    """Which corridors each of ``shards`` shards plans, and which sensors it needs (those on its
    corridors' segments). Corridors are dealt largest first (by segments read) to the shard with the
    fewest segments so far, ties by id: deterministic, so every worker computes the same plan.

    >>> from brain.city import demo_city_path, load_city
    >>> ShardPlan(load_city(demo_city_path()), 3).corridors  # more shards than corridors: some plan nothing
    [['jiefang'], ['qiutao'], []]
    """

    def __init__(self, city, shards: int):
        from brain.greenwave.corridor_flows import CorridorFlows

        if not isinstance(shards, int) or shards < 1:
            raise ValueError(f"merge shards must be a positive int, got {shards!r}")
        self.city, self.shards = city, shards
        segments = {c.id: CorridorFlows.from_city(city, c.id).segment_ids for c in city.corridors}
        load = [0] * shards
        self.corridors: list[list[str]] = [[] for _ in range(shards)]
        for cid in sorted(segments, key=lambda c: (-len(segments[c]), c)):
            k = min(range(shards), key=lambda i: (load[i], i))
            self.corridors[k].append(cid)
            load[k] += len(segments[cid])
        order = {c.id: i for i, c in enumerate(city.corridors)}
        self.corridors = [sorted(cs, key=order.__getitem__) for cs in self.corridors]  # the city's order, as the local operator's
        self.segments = [{s for cid in cs for s in segments[cid]} for cs in self.corridors]
        self._keys: list[dict[str, np.ndarray]] | None = None

    def keys(self, pipeline, shard: int) -> dict[str, np.ndarray]:
        """Shard ``shard``'s window keys per window kind of ``pipeline`` (and ``"seen"``: registry
        indices), sorted: the sensors on its corridors' segments."""
        # Computed once: every stage of one city has the same registry order and window members.
        cached = self._keys
        if cached is None:
            ids = list(pipeline.registry.ids)
            place = {s.id: s.segment for s in self.city.sensors}
            cached = []
            for segs in self.segments:
                wanted = np.array([i for i, sid in enumerate(ids) if place.get(sid) in segs], dtype=np.int64)
                per_kind = {kind: np.flatnonzero(np.isin(members, wanted)).astype(np.int64) for kind, members in pipeline._members.items()}
                per_kind["seen"] = wanted
                cached.append(per_kind)
            self._keys = cached
        return cached[shard]

    def restrict(self, part: Partial, pipeline) -> list[Partial]:
        """``part`` as each shard needs it: the same ticks, watermark and idleness (each shard's
        merged watermark waits for every input partition), only its sensors' windows, no air hours
        and no lifecycle rows (green waves read neither)."""
        out = []
        for k in range(self.shards):
            keys = self.keys(pipeline, k)
            windows = {kind: {end: _take(parts, keys[kind]) for end, parts in by_end.items()} for kind, by_end in part.windows.items()}
            out.append(Partial(part.partition, list(part.ends), part.watermark_ms, windows,
                               {end: _take(parts, keys["seen"]) for end, parts in part.seen.items()}, {}, {}, part.idle))
        return out


def _take(parts: tuple, keys: np.ndarray) -> tuple:
    at = np.isin(parts[0], keys)
    return tuple(np.asarray(a)[at] for a in parts)


class ShardPipeline(MergePipeline):
    """A corridor shard's merge stage (see the module docstring): a :class:`MergePipeline` that
    builds no vital signs and runs only its window operators (the green waves of its corridors)."""

    def _vitals_by_run(self, inputs, ends, states):
        return {}


def shard_operators(city, out_dir, corridors: list[str]) -> list:
    """Shard operators: the green-wave operator of ``corridors``, plans to the same files as the
    city merge's would go (``<out_dir>/signal_plans/``, one log per corridor); none if empty."""
    from pathlib import Path

    from streams.greenwave_operator import GreenWaveOperator
    from streams.sinks.signal_plans import FilePlanSink

    return [GreenWaveOperator(city, [FilePlanSink(Path(out_dir) / "signal_plans")], corridors)] if corridors else []


def add_shard_agent(app, topic, vitals_out, *, city, config, out_dir, app_id: str, partitions: int, plan: ShardPlan,
                    worker_id: int, batch_size: int, batch_within_s: float, fail_stop, hold_offsets):
    """The Faust agent of the corridor shards on ``topic`` (``<app>.shards``, one partition per
    shard): per shard a :class:`ShardPipeline` with its checkpoint, the same exactly-once-state /
    at-least-once-output discipline as the city merge (skip offsets at or below the checkpoint's;
    publish, flush, then save, then acknowledge). Returns the agent."""
    import asyncio

    from streams.faust_io import table_messages
    from streams.faust_state import StageState, stage_path

    states: dict[int, StageState] = {}
    app.citybrain.shards = states

    def stage(shard: int) -> StageState:
        state = states.get(shard)
        if state is not None and not state.stale():
            return state
        # First batch of this shard here, or it was on another worker meanwhile: its checkpoint is newer.
        pipe = ShardPipeline(city, config, partitions=partitions, window_operators=shard_operators(city, out_dir, plan.corridors[shard]))
        state = StageState(pipe, stage_path(out_dir, app_id, shard_stage(shard)))
        state.load()
        states[shard] = state
        return state

    async def shards(stream):
        async for events in stream.take_events(max(64, batch_size), within=min(batch_within_s, 0.25)):
            by_shard: dict[int, list] = {}
            for event in events:
                by_shard.setdefault(event.message.partition, []).append(event.message)
            try:
                for shard, messages in sorted(by_shard.items()):
                    state = stage(shard)
                    fresh = [msg for msg in messages if msg.offset > state.offset]
                    if not fresh:
                        continue
                    # The batch's pieces in, its ticks closed in one stacked pass (as the city merge does)
                    for w in state.pipeline.add_pieces([msg.value for msg in fresh]):
                        frame = w.vitals.get("signal_plans")
                        if frame is None:
                            continue
                        for key, value in table_messages("signal_plans", w.window_start_ms, w.window_end_ms, frame):
                            await vitals_out.send(key=key + f":s{shard}".encode(), value=value)
                    top = max(msg.offset for msg in fresh)
                    await app.producer.flush()
                    state.offset = top
                    await state.save_async({"shard": shard, "corridors": plan.corridors[shard], "merged_upto": state.pipeline.merged_upto(),
                                            "windows": state.pipeline.counters["windows_closed"], "worker_id": worker_id})
            except asyncio.CancelledError:
                hold_offsets(events)
                states.clear()  # it may have merged past its checkpoint: the next start reloads that
                raise
            except Exception:
                fail_stop(events)

    return app.agent(topic, name="citybrain-shards")(shards)
