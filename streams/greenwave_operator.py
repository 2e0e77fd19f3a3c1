"""Live green waves as a stream: re-plan each corridor when its measured flows shift, publish plans.

Each vital-sign tick (in time order within a batch), every corridor of the city turns the
per-segment detector volumes of that window (``batch.inputs["traffic"]``: vehicles per window per
segment) into veh/h and, through :class:`brain.greenwave.corridor_flows.CorridorFlows`, into
per-phase critical flows and directional volumes, and feeds its
:class:`brain.greenwave.CorridorReplanner`. The replanner's hysteresis decides; when it returns a
new (safety-checked) plan, the plan's NTCIP 1202-style form goes to the plan sink(s)
(``streams.sinks.signal_plans``: file, Redis stream) and a row to the ``signal_plans`` table
(corridor, plan id, valid-from, cycle, bands, window end, reason), kept in the vital-sign history.

A corridor with no detector data in a window is not updated (no measurement is not zero flow).
A plan whose valid-from is not after the sink's latest plan of that corridor is not published
again: after a crash the engine replays the windows since its last checkpoint, recomputing the
same plans, and controllers must neither see a plan twice nor an older plan after a newer one.
A sink that fails (Redis down) keeps its plans queued and retries at the next tick.

Example:
    >>> import tempfile
    >>> from brain.city import demo_city_path, load_city
    >>> from streams.sinks.signal_plans import FilePlanSink
    >>> op = GreenWaveOperator(load_city(demo_city_path()), FilePlanSink(tempfile.mkdtemp()))
    >>> sorted(op.replanners)
    ['jiefang', 'qiutao']
"""
from __future__ import annotations

import logging

import numpy as np
import polars as pl

from brain import checkpoint
from brain.greenwave.corridor_flows import CorridorFlows
from brain.greenwave.model import corridor_from_city
from brain.greenwave.plan import Plan
from brain.greenwave.replanner import CorridorReplanner
from brain.pipeline import TickBatch

log = logging.getLogger("citybrain.greenwave")

SCHEMA = {"corridor": pl.Utf8, "plan_id": pl.Utf8, "valid_from_ms": pl.Int64, "cycle_s": pl.Float64,
          "bandwidth_out_s": pl.Float64, "bandwidth_in_s": pl.Float64, "window_end_ms": pl.Int64, "reason": pl.Utf8}

SNAPSHOT_VERSION = 2  # 2: data-only (brain.checkpoint), no pickle


class GreenWaveOperator:
    """Window operator ``op(batch) -> {"signal_plans": frame}`` with ``snapshot()``/``restore()``.

    Parameters: ``city``; ``sink`` — a plan sink or a list of them (``publish(plan)``,
    ``latest(corridor)``); ``corridors`` — ids to coordinate (default: all of the city's);
    ``threshold``, ``min_hold_ms``, ``smoothing``, ``min_change_s``, ``lead_ms`` — the
    replanners' hysteresis (see :class:`brain.greenwave.CorridorReplanner`). The defaults here
    (25 % flow shift, 20 min hold, 3 s) are stricter than the replanner's: every plan change
    costs a few cycles of transition, and on the demo city they give about 25 plans per
    corridor per simulated weekday of 288 windows; ``tolerance_m`` —
    how close a segment's end must be to an intersection to count as the corridor's link;
    ``warm_start`` — re-plans start their offset search from the plan in force (default; False:
    every plan searched cold, as before).
    Raises ``ValueError`` naming the corridor when its segments cannot be resolved.
    """

    def __init__(self, city, sink, corridors: list[str] | None = None, *, threshold: float = 0.25,
                 min_hold_ms: int = 1_200_000, smoothing: float = 0.5, min_change_s: float = 3.0,
                 lead_ms: int = 0, tolerance_m: float = 25.0, warm_start: bool = True):
        sinks = list(sink) if isinstance(sink, (list, tuple)) else [sink]
        if not sinks or any(not hasattr(s, "publish") or not hasattr(s, "latest") for s in sinks):
            raise ValueError("sink must be a plan sink (publish, latest) or a non-empty list of them")
        self.sinks = sinks
        ids = [c.id for c in city.corridors] if corridors is None else list(corridors)
        self.flows: dict[str, CorridorFlows] = {}
        self.replanners: dict[str, CorridorReplanner] = {}
        for cid in ids:
            cf = CorridorFlows.from_city(city, cid, tolerance_m=tolerance_m)  # clear ValueError if unresolvable
            self.flows[cf.corridor_id] = cf
            self.replanners[cf.corridor_id] = CorridorReplanner(
                corridor_from_city(city, cf.corridor_id), threshold=threshold, min_hold_ms=min_hold_ms,
                smoothing=smoothing, min_change_s=min_change_s, lead_ms=lead_ms, warm_start=warm_start)
        seg = sorted({s for cf in self.flows.values() for s in cf.segment_ids})
        self._segments = pl.DataFrame({"segment_id": seg, "_col": np.arange(len(seg), dtype=np.int64)})
        self._cols = {cid: np.array([seg.index(s) for s in cf.segment_ids], dtype=np.int64) for cid, cf in self.flows.items()}
        self._pending: list[list[Plan]] = [[] for _ in sinks]  # per sink, plans not yet delivered
        self._sent_ms: list[dict[str, int]] = [{} for _ in sinks]  # per sink, latest valid-from per corridor
        self.publish_errors = 0

    def add_sink(self, sink) -> None:
        """Publish to one more sink from the next plan on (e.g. the Redis stream once the run's
        Redis is up); it is first brought up to date with the plans in force."""
        if not hasattr(sink, "publish") or not hasattr(sink, "latest"):
            raise ValueError("sink must be a plan sink (publish, latest)")
        self.sinks.append(sink)
        self._pending.append([rp.plan for rp in self.replanners.values() if rp.plan is not None])
        self._sent_ms.append({})

    # ------------------------------------------------------------------ ticks
    def __call__(self, batch: TickBatch) -> dict[str, pl.DataFrame]:
        rows = []
        vph = self._volumes_vph(batch)
        # Each corridor's flows of every tick of the batch in one call (row by row the same numbers;
        # a call per tick and corridor cost a replay more than the vital signs).
        per_corridor = {cid: vph[:, self._cols[cid]] for cid in self.replanners}
        computed = {cid: self.flows[cid].compute(v) for cid, v in per_corridor.items()}
        measured = {cid: ~np.all(np.isnan(v), axis=1) for cid, v in per_corridor.items()}
        for t, end in enumerate(batch.ends):
            for cid, rp in self.replanners.items():
                if not measured[cid][t]:
                    continue  # no detector reported on this corridor: nothing measured
                flows, out, inb = computed[cid]
                plan = rp.update(end, flows[t], _opt(out[t]), _opt(inb[t]))
                if plan is None:
                    continue
                rows.append({"corridor": cid, "plan_id": plan.plan_id, "valid_from_ms": plan.valid_from_ms,
                             "cycle_s": plan.cycle_s, "bandwidth_out_s": plan.band_out_s,
                             "bandwidth_in_s": plan.band_in_s, "window_end_ms": end, "reason": rp.last_reason})
                for queue in self._pending:
                    queue.append(plan)
            self._deliver()
        return {"signal_plans": pl.DataFrame(rows, schema=SCHEMA)}

    def _volumes_vph(self, batch: TickBatch) -> np.ndarray:
        """(ticks, segments) veh/h of every corridor segment; NaN = no data in that window."""
        out = np.full((len(batch.ends), self._segments.height), np.nan)
        traffic = batch.inputs.get("traffic")
        if traffic is None or traffic.height == 0 or not batch.ends:
            return out
        tr = (traffic.select("segment_id", "tick_end_ms", "window_start_ms", "window_end_ms", "volume_veh")
              .join(self._segments, on="segment_id", how="inner")
              .filter(pl.col("volume_veh").is_not_null()))
        if tr.height == 0:
            return out
        ends = np.asarray(batch.ends, dtype=np.int64)
        tick = tr["tick_end_ms"].to_numpy()
        t = np.searchsorted(ends, tick)
        ok = (t < len(ends)) & (ends[np.minimum(t, len(ends) - 1)] == tick)
        span_h = (tr["window_end_ms"].to_numpy() - tr["window_start_ms"].to_numpy()) / 3_600_000.0
        out[t[ok], tr["_col"].to_numpy()[ok]] = tr["volume_veh"].to_numpy()[ok] / span_h[ok]
        return out

    def _deliver(self) -> None:
        for k, sink in enumerate(self.sinks):
            queue = self._pending[k]
            while queue:
                plan = queue[0]
                try:
                    sent = self._sent_ms[k].get(plan.corridor)
                    if sent is None:
                        doc = sink.latest(plan.corridor)
                        sent = self._sent_ms[k][plan.corridor] = _valid_ms(doc)
                    if plan.valid_from_ms is not None and plan.valid_from_ms > sent:
                        sink.publish(plan)
                        self._sent_ms[k][plan.corridor] = plan.valid_from_ms
                except Exception as exc:  # a sink outage must not stop the city brain; retry next tick
                    self.publish_errors += 1
                    log.warning("cannot publish plan %s to %s (will retry): %s", plan.plan_id, type(sink).__name__, exc)
                    break
                queue.pop(0)

    # ------------------------------------------------------------- checkpoint
    def snapshot(self) -> bytes:
        return checkpoint.encode({
            "version": SNAPSHOT_VERSION,
            "replanners": {cid: rp.state() for cid, rp in self.replanners.items()},
            "pending": [[p.to_dict() for p in q] for q in self._pending],
        })

    def restore(self, blob: bytes) -> None:
        import msgspec

        state = checkpoint.decode(blob)
        if not isinstance(state, dict) or state.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"green-wave snapshot version {state.get('version') if isinstance(state, dict) else None} is not {SNAPSHOT_VERSION}")
        if sorted(state["replanners"]) != sorted(self.replanners):
            raise ValueError(f"green-wave snapshot has corridors {sorted(state['replanners'])}, "
                             f"the city has {sorted(self.replanners)}")
        for cid, rp in self.replanners.items():
            rp.load(state["replanners"][cid])
        pending = state["pending"]
        if len(pending) == len(self.sinks):
            self._pending = [[msgspec.convert(p, Plan) for p in q] for q in pending]
        # What the sinks already hold is re-read from them, not trusted from the snapshot.
        self._sent_ms = [{} for _ in self.sinks]


def _opt(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def _valid_ms(doc: dict | None) -> int:
    if not doc or doc.get("valid_from_ms") is None:
        return -(2**62)
    return int(doc["valid_from_ms"])


def maybe_greenwave_operator(city, out_dir, redis_client=None, fresh: bool = False):
    """The operator for ``citybrain run``: a file sink under ``<out_dir>/signal_plans/`` (plus a
    Redis stream sink when a Redis client is given); ``None`` when the city has no corridors.
    ``fresh`` (``run --fresh``) starts the file sink's plan logs over, like the checkpoint."""
    from pathlib import Path

    from streams.sinks.signal_plans import FilePlanSink, RedisStreamPlanSink

    if not city.corridors:
        return None
    directory = Path(out_dir) / "signal_plans"
    if fresh and directory.is_dir():
        for f in [*directory.glob("*.plans.jsonl"), *directory.glob("*.latest.json")]:
            f.unlink()
    sinks = [FilePlanSink(directory)]
    if redis_client is not None:
        sinks.append(RedisStreamPlanSink(redis_client))
    return GreenWaveOperator(city, sinks)
