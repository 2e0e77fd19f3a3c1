"""The topology, written once: validate → dedup/late → enrich → window → state → vital signs.

:class:`CityPipeline` is pure and synchronous: a driver (``streams.local`` in one process, the
Faust driver across workers) feeds it batches — raw JSON lines or per-kind frames — and gets back
the windows that closed, the dead letters and the late records of that batch. Every record that
goes in ends in exactly one place, and the counters prove it:
``records_in == applied + dead_lettered + late``.

Windows: traffic, probe, noise, utility, water-quality, weather and hazard readings use tumbling
windows of ``window_s`` (the vital-sign tick); air uses hourly windows, with 8 h (O3) and 24 h
moving means built from the last closed hours (a sliding window over hourly panes). The tables of the
ticks closed together are built by :mod:`brain.ticks`.

Example (three minutes of one detector, then the end of the stream):
    >>> import msgspec
    >>> from brain.city import demo_city_path, load_city
    >>> city = load_city(demo_city_path())
    >>> pipe = CityPipeline(city, PipelineConfig(window_s=300))
    >>> lines = [msgspec.json.encode({"kind": "traffic", "sensor_id": "LP-JF-01E", "ts_ms": 1_780_243_200_000 + m * 60_000,
    ...                               "volume_veh": 12, "occupancy_pct": 8.0, "speed_kmh": 45.0}) for m in range(3)]
    >>> step = pipe.ingest_jsonl(b"\\n".join(lines + [b"not json"]))
    >>> step.dead["reason_code"].to_list(), pipe.invariant_holds()
    (['malformed'], True)
    >>> window = pipe.flush().windows[0]
    >>> window.vitals["segment_traffic"].filter(pl.col("segment_id") == "JF-01E")["speed_kmh"].to_list()
    [45.0]
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import msgspec
import numpy as np
import polars as pl

from brain import checkpoint, series
from brain.city.model import City
from brain.eventtime import Deduper, EventClock
from brain.ingest import DEAD_SCHEMA, DeadLetters, decode_jsonl
from brain.lifecycle import LifecycleTable
from brain.pipeline_config import PipelineConfig  # (drivers import it from here)
from brain.lifecycle_kinds import (  # noqa: F401 (re-exported: operators, drivers and benches import them from here)
    CASE_STAGES, INCIDENT_STAGES, LIFECYCLE_KINDS, OUTAGE_STAGES, lifecycle_schema as _lifecycle_schema,
)
from brain.schemas import KIND_SENSOR_TYPES
from brain.ticks import (  # noqa: F401 (the tables' names, re-exported: operators and benches import them from here)
    AIR_FIELDS, HOUR_MS, PASS_THROUGH, SENSOR_TABLES, STATE_TABLES, TICK_SCHEMAS, WINDOW_FIELDS, StateAsOf, TickBatch, TickBuilder, WindowResult,
)
from brain.validate import Validator, dead_letters
from brain.windows import ClosedWindow, TumblingWindows

SNAPSHOT_VERSION = 6  # 6: lifecycle updates held until their tick closes; 5: a clock per sensor; 4: data-only format (brain.checkpoint), no pickle; 3: duplicate keys from brain.kernels.dedup.record_keys
TICKS_PER_PASS = 288  # ticks closed in one stacked pass at most (a day of 5-minute ticks)
QUIET_SKIP_MS = 86_400_000  # ticks more than this past the newest record, with none ahead, are skipped


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel a pipeline runs, once per process, so the
    first batch does not pay for it (a new :class:`CityPipeline` calls this)."""
    global _WARM
    if not _WARM:
        from brain.kernels import dedup, jsonscan, lifecycle, window
        from brain.vitals.batch import warm_up as warm_up_vitals

        for kernel_module in (window, jsonscan, dedup, lifecycle):
            kernel_module.warm_up()
        warm_up_vitals()
        _WARM = True


_WARM = False


def _floats(cols, name: str) -> np.ndarray:
    """A checked column as float64 (NaN where null), as the validator already read it."""
    return cols.values(name).astype(np.float64, copy=False)


@dataclass
class StepResult:
    """What one batch produced."""

    windows: list[WindowResult]
    dead: pl.DataFrame  # reason_code, reason, raw
    late: pl.DataFrame  # reason_code='late', reason, raw
    records_in: int


class CityPipeline:
    """The whole per-batch operator chain for one city (see module docstring).

    ``vitals_fn(inputs, city, window_end_ms) -> dict[str, DataFrame]`` computes the vital signs of one
    tick (default: :func:`brain.vitals.compute_vitals`, or its batch form over many ticks at once,
    ``compute_vitals_batch``, when present); ``window_operators`` are callables
    ``op(batch: TickBatch) -> dict[str, DataFrame]`` whose stacked tables (with ``window_end_ms``) are
    added to the vital signs of the ticks (anomaly scores, for example); an operator with
    ``snapshot()``/``restore()`` is checkpointed with the pipeline.
    """

    def __init__(self, city: City, config: PipelineConfig | None = None, vitals_fn=None, window_operators=()):
        warm_up()
        self.city = city
        self.config = config or PipelineConfig()
        self.validator = Validator.from_city(city)
        self.registry = self.validator.registry
        n = len(self.registry)
        # One clock per sensor (registry index); the city's watermark is robust to a few wild ones.
        self.clock = EventClock(self.config.allowed_lateness_s * 1000, self.config.max_ahead_s * 1000, n_sources=n,
                                wild_share=self.config.wild_clock_share, idle_ms=self.config.source_idle_s * 1000)
        self.deduper = Deduper()
        # Each window kind keys its own sensors only (those allowed to send it, in registry order):
        # window arrays are a few hundred keys wide, not the whole registry.
        self._members = {kind: np.flatnonzero(self.registry.per_sensor(lambda s, kind=kind: s.type in KIND_SENSOR_TYPES[kind])[:-1])
                         for kind in WINDOW_FIELDS}
        self._local = {kind: np.full(n, -1, np.int64) for kind in self._members}
        for kind, members in self._members.items():
            self._local[kind][members] = np.arange(len(members))
        self.windows = {k: TumblingWindows(len(self._members[k]), self.config.window_ms, f) for k, f in WINDOW_FIELDS.items()}
        self.air = TumblingWindows(len(self._members["air"]), HOUR_MS, AIR_FIELDS)
        self.lifecycle = {
            kind: LifecycleTable(id_col, stages, fields, self.config.retention_days * 86_400_000)
            for kind, (id_col, stages, fields, _) in LIFECYCLE_KINDS.items()
        }
        # Lifecycle updates reach the tables tick by tick, in event time (never a batch's future).
        self.states = StateAsOf({kind: (self.lifecycle[kind], name, _lifecycle_schema(kind))
                                 for kind, (_, _, _, name) in LIFECYCLE_KINDS.items()})
        self.last_seen_ms = np.full(n, -1, dtype=np.int64)  # as of the last closed tick
        self.seen = TumblingWindows(n, self.config.window_ms, ["ts_ms"])  # newest time per sensor per window
        self.next_tick_end_ms: int | None = None
        self.counters: Counter[str] = Counter()
        self.vitals_batch_fn = None
        if vitals_fn is None:
            import brain.vitals as vitals_module

            vitals_fn = vitals_module.compute_vitals
            self.vitals_batch_fn = getattr(vitals_module, "compute_vitals_batch", None)
        self.vitals_fn = vitals_fn
        # Grid-case figures kept up to date by the cases that change, not recounted over every case per tick.
        from brain.vitals.config import VitalsConfig
        from brain.vitals.stack.casetally import CaseTally
        from brain.vitals.stack.liverows import LiveRows, incident_until, outage_until

        self._tallied_fn = self.vitals_batch_fn
        self.case_tally = (CaseTally(self.lifecycle["grid_case"], int(VitalsConfig().case_lookback_s * 1000))
                           if self.vitals_batch_fn is not None else None)
        # Incidents and outages: only the rows that can still count are read per tick, not every row
        # kept for retention. (case_tally = None and live_rows = {} recount everything: the
        # differential tests' peer.)
        self.live_rows = {} if self.vitals_batch_fn is None else {
            "incidents": LiveRows(self.lifecycle["incident"], incident_until(int(VitalsConfig().incident_lookback_s * 1000)),
                                  list(_lifecycle_schema("incident"))),
            "outages": LiveRows(self.lifecycle["outage"], outage_until, list(_lifecycle_schema("outage"))),
        }
        self.window_operators = list(window_operators)
        for op in self.window_operators:  # operators keeping their own tallies of the lifecycle tables
            if hasattr(op, "watch_lifecycle"):
                op.watch_lifecycle(self.lifecycle)
        segment_ids = [s.id for s in city.segments]
        self.ticks = TickBuilder(self._members, self._sensor_place_index("segment", segment_ids), segment_ids,
                                 list(self.registry.ids), self.config.window_ms)
        # Refusals judged after the checks, as the validator's dead-letter builder takes them.
        self._refusals = [
            ("too_far_ahead", lambda r: f"ts_ms={r['ts_ms']} more than {self.clock.max_ahead_ms} ms ahead of its sensor's own clock (or the stream's)"),
            ("duplicate", lambda r: f"duplicate of an applied record (sensor {r['sensor_id']}, ts_ms {r['ts_ms']})"),
        ]

    # --- input ------------------------------------------------------------------------------------
    def ingest_jsonl(self, buf: bytes) -> StepResult:
        """Decode JSON lines and process them as one batch."""
        frames, unreadable = decode_jsonl(buf, sensor_index=self.registry.index,
                                          max_line_bytes=self.config.max_line_bytes, max_depth=self.config.max_depth)
        return self._process(frames, unreadable)

    def ingest_frames(self, frames: dict[str, pl.DataFrame]) -> StepResult:
        """Process already-columnar records (``{kind: frame}`` with the schema's columns)."""
        return self._process(frames, pl.DataFrame(schema=DEAD_SCHEMA))

    def advance_to(self, ts_ms: int) -> StepResult:
        """Move stream time forward with no records (a quiet source still closes windows)."""
        self.clock.advance_to(ts_ms)
        return StepResult(self._close_ticks(), pl.DataFrame(schema=DEAD_SCHEMA), pl.DataFrame(schema=DEAD_SCHEMA), 0)

    def flush(self) -> StepResult:
        """End of a finite stream: close the ticks the data cover, up to the one holding the newest
        record — not past it (ticks with no data after the end of a file would read as every
        sensor gone silent). A partial last hour of air readings is not closed (no hourly mean of
        a part of an hour)."""
        newest = self.clock.newest_ms()
        if newest is not None:
            w = self.config.window_ms
            last_tick_end = (newest // w) * w + w
            return self.advance_to(last_tick_end + self.clock.allowed_lateness_ms)
        return self.advance_to(0)

    # --- the chain --------------------------------------------------------------------------------
    def _process(self, frames: dict[str, pl.DataFrame], unreadable: pl.DataFrame) -> StepResult:
        dead, late_letters = DeadLetters(), DeadLetters()  # every kind's refusals, one frame each at the end
        records_in = unreadable.height + sum(f.height for f in frames.values())
        self.counters["records_in"] += records_in
        for code in unreadable["reason_code"].to_list():
            self.counters[f"dead.{code}"] += 1
        # Each kind's rows are checked, then judged in event time (against the batch's time bounds,
        # over every kind's checked rows together), then for duplicates: numpy masks over the batch's
        # columns; a row leaves at its first failed stage, with that stage's reason.
        checked = []
        for kind, frame in frames.items():
            if frame.height:
                self.counters[f"in.{kind}"] += frame.height
                idx, outcome, cols = self.validator.check(kind, frame)
                checked.append((kind, frame, idx, outcome, cols, cols.int64("ts_ms")))
        bounds = floor = None
        if checked:
            batch_ts = np.concatenate([ts[outcome < 0] for *_, outcome, _, ts in checked])
            bounds = self.clock.bounds(batch_ts)
            if batch_ts.size:
                floor = self.clock.batch_floor(batch_ts, np.concatenate([cols.sensor_idx[outcome < 0] for *_, outcome, cols, _ in checked]))
        accepted = []
        for kind, frame, idx, outcome, cols, ts in checked:
            good = outcome < 0
            late, ahead = self.clock.judge(ts, good, bounds, source=cols.sensor_idx, floor_ms=floor)
            on_time = good & ~late & ~ahead
            fresh = self.deduper.first_copies(kind, self.deduper.keys(kind, frame, idx, ts), ts, on_time)
            # Refused rows of every stage (checks, too far ahead, duplicate) as one set of dead letters.
            n_checks = self.validator.n_checks(kind)
            outcome[ahead] = n_checks  # self._refusals[0]
            outcome[on_time & ~fresh] = n_checks + 1  # self._refusals[1]
            for code, n in self.validator.dead_letters(dead, kind, cols, outcome, self._refusals).items():
                self.counters[f"dead.{code}"] += n
            if late.any():
                wm, lateness = self.clock.watermark_ms, self.clock.allowed_lateness_ms
                counts = dead_letters(late_letters, kind, frame, np.where(late, 0, -1), [
                    ("late", lambda r: f"ts_ms={r['ts_ms']} behind watermark {wm} (allowed lateness {lateness} ms)")])
                self.counters["late"] += counts["late"]
            n_fresh = int(fresh.sum())
            if n_fresh:
                accepted.append((kind, cols, None if n_fresh == frame.height else fresh))
                self.counters["applied"] += n_fresh
                self.counters[f"applied.{kind}"] += n_fresh
        if accepted:
            applied = [self._apply(kind, cols, rows) for kind, cols, rows in accepted]
            # Newest time per sensor and window, for sensor health: one pass over all kinds' rows.
            ts, idx = (np.concatenate(parts) for parts in zip(*applied))
            self.seen.add(ts, idx, ts.astype(np.float64)[:, None])
            self.clock.observe(ts, idx)
            if self.next_tick_end_ms is None:  # the first tick holds the batch's earliest applied record
                w = self.config.window_ms
                self.next_tick_end_ms = (int(ts.min()) // w) * w + w
        windows = self._close_ticks()
        refused = unreadable.vstack(dead.frame()) if unreadable.height else dead.frame()  # (same schema: no concat query)
        self.counters["dead_lettered"] += refused.height
        return StepResult(windows, refused, late_letters.frame(), records_in)

    def _apply(self, kind: str, cols, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Add the applied rows (``rows``: a mask, None for all) of one kind's batch to the state;
        returns their times and sensor indices."""
        at = None if rows is None else np.flatnonzero(rows)

        def take(values: np.ndarray) -> np.ndarray:
            # np.take along the first axis: ~9x faster than a boolean mask on the (rows, fields) arrays
            return values if at is None else np.take(values, at, axis=0)

        ts = take(cols.int64("ts_ms"))
        idx = take(cols.sensor_idx)
        if kind in WINDOW_FIELDS:
            values = take(self._window_values(kind, cols))
            self.windows[kind].add(ts, self._local[kind][idx], values)
            if kind == "air":
                self.air.add(ts, self._local[kind][idx], values)
        elif kind in LIFECYCLE_KINDS:
            frame = cols.frame
            self.states.add(kind, frame if at is None else series.take_rows(frame, at))
        return ts, idx

    @staticmethod
    def _window_values(kind: str, cols) -> np.ndarray:
        """The window kernel's ``(rows, fields)`` values of one kind, from the columns the checks
        already read as numpy (a null reads NaN: "no value" for the kernel)."""
        if kind == "noise":
            # Energy average is the right mean for decibels (pow stays in polars: numpy's may differ in the last bit).
            energy = cols.frame.select((10.0 ** (pl.col("laeq_db").cast(pl.Float64) / 10.0)).fill_null(float("nan"))).to_series()
            return np.column_stack([energy.to_numpy(), _floats(cols, "lamax_db")])
        if kind == "traffic":
            volume, speed = _floats(cols, "volume_veh"), _floats(cols, "speed_kmh")
            return np.column_stack([volume, speed * volume, speed, _floats(cols, "occupancy_pct")])
        return np.column_stack([_floats(cols, f) for f in WINDOW_FIELDS[kind]])

    # --- ticks ------------------------------------------------------------------------------------
    def _close_ticks(self) -> list[WindowResult]:
        """Close every tick the watermark has passed, up to a day of ticks per stacked pass.

        Input tables of the ticks of a pass are built as one frame each (a ``tick_end_ms`` column
        tells the ticks apart), the vital signs are computed for all of them in one call, window
        operators see the whole stack in time order, and only then is the result split per tick. A
        replay that closes hundreds of windows per batch pays polars' per-call overhead once, not per
        window; a pass of at most a day of ticks bounds the memory a jump in stream time can take.
        A stretch of more than a day with no record at all is not ticked through: after a day of
        ticks past the newest record, stream time jumps to the next tick that holds data (or the
        watermark's); the ticks jumped over are counted in ``ticks_skipped``.
        """
        wm = self.clock.watermark_ms
        if wm is None or self.next_tick_end_ms is None or wm < self.next_tick_end_ms:
            return []
        w = self.config.window_ms
        last_tick = wm - wm % w  # tick ends are multiples of the window
        results: list[WindowResult] = []
        while self.next_tick_end_ms <= wm:
            self._skip_quiet_stretch(last_tick)
            ends = list(range(self.next_tick_end_ms, min(last_tick, self.next_tick_end_ms + (TICKS_PER_PASS - 1) * w) + 1, w))
            self.next_tick_end_ms = ends[-1] + w
            results += self._close_stack(ends)
        for table in self.lifecycle.values():
            table.prune(wm)
        self.deduper.forget_before(wm)
        return results

    def _skip_quiet_stretch(self, last_tick: int) -> None:
        newest = int(self.last_seen_ms.max()) if len(self.last_seen_ms) else -1
        if newest < 0 or self.next_tick_end_ms - newest <= QUIET_SKIP_MS:
            return
        open_starts = self.seen.open_starts()
        target = min(open_starts[0] + self.config.window_ms if open_starts else last_tick, last_tick)
        if target > self.next_tick_end_ms:
            self.counters["ticks_skipped"] += (target - self.next_tick_end_ms) // self.config.window_ms
            self.next_tick_end_ms = target

    def _close_stack(self, ends: list[int]) -> list[WindowResult]:
        """The ticks ``ends`` (consecutive) closed in one stacked pass."""
        w = self.config.window_ms
        upto = ends[-1]
        # The windows of all due ticks stacked as (tick, key, field) arrays: every table below is
        # built for all ticks at once, with no Python loop per tick.
        stacks = {}
        for kind, tw in self.windows.items():
            by_end = {c.end_ms: c for c in tw.close(upto)}
            if by_end:
                stacks[kind] = ClosedWindow.stack([by_end.get(e) for e in ends], tw.n_keys, tw.fields)
        seen_by_end = {c.end_ms: c for c in self.seen.close(upto)}
        seen = ClosedWindow.stack([seen_by_end.get(e) for e in ends], self.seen.n_keys, self.seen.fields)
        newest = np.where(seen.counts[..., 0] > 0, seen.maxs[..., 0], -1).astype(np.int64)
        newest[0] = np.fmax(newest[0], self.last_seen_ms)
        last_seen = np.maximum.accumulate(newest, axis=0)  # (tick, sensor), as of each tick's end
        self.last_seen_ms = last_seen[-1].copy()
        inputs = self.ticks.build(ends, stacks, last_seen, self.air.close(upto))
        states = self.states.as_of(ends)
        inputs.update({name: by_end[upto] for name, by_end in states.items()})
        vital_inputs = {k: v for k, v in inputs.items() if k not in PASS_THROUGH}
        vitals = self._vitals_by_run(vital_inputs, ends, states)
        # Readings with no vital-sign formula yet are still published per sensor for rules.
        vitals.update({f"{k}_sensor": inputs[k] for k in PASS_THROUGH})
        batch = TickBatch(ends, inputs, vitals, states)
        for op in self.window_operators:
            vitals.update(op(batch))
        results = [WindowResult(end - w, end, batch=batch) for end in ends]
        self.counters["windows_closed"] += len(results)
        return results

    def _vitals_by_run(self, inputs: dict[str, pl.DataFrame], ends: list[int], states: dict) -> dict[str, pl.DataFrame]:
        """Vital signs of stacked ticks, one stacked call per run of ticks whose lifecycle fields did
        not change (:meth:`StateAsOf.runs`), each run seeing the state as of its own last tick."""
        runs = self.states.runs(ends)
        if len(runs) == 1:
            return dict(self.vitals_batch(inputs, self.city, ends))
        parts: dict[str, list[pl.DataFrame]] = {}
        for k, run in enumerate(runs):
            ticks = pl.Series(run, dtype=pl.Int64)
            run_inputs = {name: states[name][run[-1]] if name in states else
                          frame.filter(pl.col("tick_end_ms").is_in(ticks)) if "tick_end_ms" in frame.columns else frame
                          for name, frame in inputs.items()}
            if k < len(runs) - 1 and self.vitals_batch_fn is self._tallied_fn:
                # An earlier state than the tables' own (the last run's): its rows of the live entities.
                for name, live in self.live_rows.items():
                    if name in run_inputs:
                        run_inputs[name] = live.frame(run[0], run_inputs[name])
            for name, frame in self.vitals_batch(run_inputs, self.city, run, latest=k == len(runs) - 1).items():
                parts.setdefault(name, []).append(frame)
        return {name: pl.concat(frames, how="vertical_relaxed") for name, frames in parts.items()}

    def vitals_batch(self, inputs: dict[str, pl.DataFrame], city: City, ends: list[int], latest: bool = True) -> dict[str, pl.DataFrame]:
        """Vital signs of stacked ticks: the batch function when there is one, else tick by tick.
        ``latest``: the lifecycle inputs are the tables' current state (not an earlier tick's)."""
        if self.vitals_batch_fn is not None:
            if self.vitals_batch_fn is self._tallied_fn:
                # An earlier state (not the last run of a pass): the tally only if it holds for it.
                tally = self.case_tally if latest or (self.case_tally is not None and self.case_tally.exact_until(ends[-1])) else None
                live = self.live_rows if latest else {}
                return self.vitals_batch_fn(inputs, city, ends, cases=tally, **live)
            return self.vitals_batch_fn(inputs, city, ends)
        per_tick: dict[str, list[pl.DataFrame]] = {}
        for end in ends:
            tick_inputs = {}
            for name, frame in inputs.items():
                if "tick_end_ms" in frame.columns:
                    frame = frame.filter(pl.col("tick_end_ms") == end).drop("tick_end_ms")
                tick_inputs[name] = frame
            for name, frame in self.vitals_fn(tick_inputs, city, end).items():
                if "window_end_ms" not in frame.columns:
                    frame = frame.with_columns(pl.lit(end, pl.Int64).alias("window_end_ms"))
                per_tick.setdefault(name, []).append(frame)
        return {name: pl.concat(parts, how="diagonal_relaxed") for name, parts in per_tick.items()}

    def _sensor_place_index(self, attr: str, ids: list[str]) -> np.ndarray:
        pos = {pid: i for i, pid in enumerate(ids)}
        return np.array([pos.get(getattr(s, attr) or "", -1) for s in self.city.sensors], dtype=np.int64)


    # --- snapshot ---------------------------------------------------------------------------------
    def snapshot(self) -> bytes:
        """All operator state as bytes (restore with :meth:`restore` on a pipeline of the same city)."""
        state = {
            "version": SNAPSHOT_VERSION,
            "config": msgspec.structs.asdict(self.config),
            "n_sensors": len(self.registry),
            "clock": self.clock.state(),
            "dedup": self.deduper.state(),
            "windows": {k: w.state() for k, w in self.windows.items()},
            "air": self.air.state(),
            "seen": self.seen.state(),
            "air_history": self.ticks.state(),
            "lifecycle": {k: t.state() for k, t in self.lifecycle.items()},
            "lifecycle_pending": self.states.state(),
            "last_seen_ms": self.last_seen_ms,
            "next_tick_end_ms": self.next_tick_end_ms,
            "counters": dict(self.counters),
            "operators": [op.snapshot() if hasattr(op, "snapshot") else None for op in self.window_operators],
        }
        return checkpoint.encode(state)

    def restore(self, blob: bytes) -> None:
        """Replace all operator state with a :meth:`snapshot` (``ValueError`` saying why when it does not fit)."""
        state = checkpoint.decode(blob)
        if not isinstance(state, dict) or state.get("version") != SNAPSHOT_VERSION:
            raise ValueError(
                f"snapshot version {state.get('version') if isinstance(state, dict) else None} is not {SNAPSHOT_VERSION}: it was written by another "
                "CityBrain version; start afresh (citybrain run --fresh)"
            )
        if state["n_sensors"] != len(self.registry):
            raise ValueError("snapshot was taken with a different sensor registry")
        if state["config"] != msgspec.structs.asdict(self.config):
            raise ValueError("snapshot was taken with different pipeline settings")
        self.clock.load(state["clock"])
        self.deduper.load(state["dedup"])
        for k, w in self.windows.items():
            if k in state["windows"]:  # a snapshot from before air had tick windows: its open one starts empty
                w.load(state["windows"][k])
        self.air.load(state["air"])
        self.seen.load(state["seen"])
        self.ticks.load(state["air_history"])
        for k, t in self.lifecycle.items():
            t.load(state["lifecycle"][k])
        self.states.load(state["lifecycle_pending"])
        self.last_seen_ms = state["last_seen_ms"]
        self.next_tick_end_ms = state["next_tick_end_ms"]
        self.counters = Counter(state["counters"])
        saved = state.get("operators", [])
        if len(saved) != len(self.window_operators):
            raise ValueError("snapshot was taken with other window operators")
        for op, blob in zip(self.window_operators, saved):
            if blob is not None and hasattr(op, "restore"):
                op.restore(blob)

    def invariant_holds(self) -> bool:
        c = self.counters
        return c["records_in"] == c["applied"] + c["dead_lettered"] + c["late"]

    def problems(self, max_late_share: float = 0.05) -> list[str]:
        """What is wrong with the run so far, one sentence each (empty: healthy). Balanced
        accounting is not health: a share of late or too-far-ahead records above
        ``max_late_share`` means a clock or a feed is wrong, and is reported, not hidden in the sum.

        >>> from brain.city import demo_city_path, load_city
        >>> pipe = CityPipeline(load_city(demo_city_path()))
        >>> pipe.counters.update({"records_in": 100, "applied": 60, "late": 40})
        >>> pipe.problems()
        ['40 of 100 records (40.0 %) were late (more than 5 %): a sensor clock or the feed order is wrong — see deadletter/late-*.jsonl']
        """
        c = self.counters
        out = []
        if not self.invariant_holds():
            out.append(f"records in {c['records_in']:,} != applied {c['applied']:,} + dead-lettered {c['dead_lettered']:,} + late {c['late']:,}")
        n = c["records_in"]
        for what, count, where in (("late", c["late"], "late-*.jsonl"), ("too far ahead", c["dead.too_far_ahead"], "deadletter-*.jsonl")):
            if n and count > max_late_share * n:
                out.append(f"{count:,} of {n:,} records ({100 * count / n:.1f} %) were {what} (more than {100 * max_late_share:g} %): "
                           f"a sensor clock or the feed order is wrong — see deadletter/{where}")
        if c["dead.unprocessable"]:  # the engine failed on them: a fault in CityBrain, however few
            out.append(f"{c['dead.unprocessable']:,} records were unprocessable (the pipeline failed on their batch) — "
                       "see deadletter/deadletter-*.jsonl and the error log")
        return out
