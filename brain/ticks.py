"""Tick tables: the stacked input tables of the vital-sign ticks closed together.

When the watermark passes one or more tick ends, the pipeline closes their windows and hands them
here as stacked ``(tick, key, field)`` arrays; :class:`TickBuilder` turns them into one polars
frame per table for all those ticks at once (a ``tick_end_ms`` column tells the ticks apart): per
sensor (noise, utility, weather, ...), per road segment (traffic averaged over a segment's
detectors, probe travel times), the hourly, 8-hour and 24-hour air means, and when each sensor
was last seen. :class:`TickBatch` holds those tables and the vital signs computed from them;
:class:`WindowResult` is one tick of it, cut out on first access.

Example (one noise sensor, one tick):
    >>> import numpy as np
    >>> from brain.windows import ClosedWindow, TumblingWindows
    >>> builder = TickBuilder({"noise": np.array([1])}, segment_of_sensor=np.array([-1, -1]), segment_ids=[],
    ...                       sensor_ids=["N-1", "N-2"], window_ms=300_000)
    >>> noise = TumblingWindows(1, 300_000, WINDOW_FIELDS["noise"])
    >>> noise.add(np.array([10_000]), np.array([0]), np.array([[1e6, 70.0]]))
    >>> stacked = ClosedWindow.stack(noise.close(300_000), 1, noise.fields)
    >>> tables = builder.build([300_000], {"noise": stacked}, np.array([[-1, 10_000]]), closed_hours=[])
    >>> tables["noise"].select("sensor_id", "laeq_db", "lamax_db", "tick_end_ms").rows()
    [('N-2', 60.0, 70.0, 300000)]
    >>> tables["sensor_last_seen"].rows()
    [('N-1', 300000, None), ('N-2', 300000, 10000)]
"""
from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from brain import series
from brain.windows import ClosedWindow

HOUR_MS = 3_600_000

AIR_FIELDS = ["pm25_ugm3", "pm10_ugm3", "so2_ugm3", "no2_ugm3", "o3_ugm3", "co_mgm3"]

#: Reading kinds windowed per sensor: kind -> window fields (derived fields are computed before adding).
WINDOW_FIELDS: dict[str, list[str]] = {
    "traffic": ["volume_veh", "speed_x_volume", "speed_kmh", "occupancy_pct"],
    "probe": ["travel_time_s"],
    "noise": ["laeq_energy", "lamax_db"],
    "utility": ["pressure_kpa", "flow_m3h", "load_kw"],
    "water_quality": ["ph", "turbidity_ntu", "dissolved_oxygen_mgl"],
    "weather": ["temp_c", "humidity_pct", "wind_ms", "rain_mm"],
    "hazard": ["value"],
    # Air stations also feed hourly windows (the AQI's basis); the tick's means are the sub-hourly
    # view: a rising concentration and a stuck or spiking station show an hour sooner there.
    "air": AIR_FIELDS,
}
#: Per-sensor window tables that go straight to the outputs (no vital-sign formula consumes them).
PASS_THROUGH = ("water_quality", "weather", "hazard", "detector", "air")

_WIN = {"window_start_ms": pl.Int64, "window_end_ms": pl.Int64, "tick_end_ms": pl.Int64}


def _mean(field: str):
    return lambda w: w.mean(field)


#: Per-sensor window tables built at each tick: table -> (window kind, {column: how it comes from the window}).
SENSOR_TABLES = {
    # Energy average is the right mean for decibels.
    "noise": ("noise", {"laeq_db": lambda w: 10.0 * np.log10(w.mean("laeq_energy")), "lamax_db": lambda w: w.max("lamax_db")}),
    "utility": ("utility", {f: _mean(f) for f in ("pressure_kpa", "flow_m3h", "load_kw")}),
    "water_quality": ("water_quality", {f: _mean(f) for f in ("ph", "turbidity_ntu", "dissolved_oxygen_mgl")}),
    "weather": ("weather", {f: _mean(f) for f in ("temp_c", "humidity_pct", "wind_ms", "rain_mm")}),
    "hazard": ("hazard", {"value": _mean("value"), "value_max": lambda w: w.max("value")}),
    # Each traffic detector on its own (segments average them): a stuck or drifting one shows here.
    "detector": ("traffic", {"speed_kmh": _mean("speed_kmh"), "occupancy_pct": _mean("occupancy_pct"),
                             "volume_veh": lambda w: w.sum("volume_veh")}),
    "air": ("air", {f: _mean(f) for f in AIR_FIELDS}),
}

#: Every stacked tick table and its columns (``tick_end_ms`` names the tick a row belongs to).
TICK_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "traffic": {"segment_id": pl.Utf8, **_WIN, "volume_veh": pl.Float64, "speed_kmh": pl.Float64,
                "occupancy_pct": pl.Float64, "n_readings": pl.Int64},
    "probe": {"segment_id": pl.Utf8, **_WIN, "travel_time_s": pl.Float64, "n_readings": pl.Int64},
    **{name: {"sensor_id": pl.Utf8, **_WIN, **{c: pl.Float64 for c in cols}} for name, (_, cols) in SENSOR_TABLES.items()},
    "air_1h": {"sensor_id": pl.Utf8, **_WIN, **{f: pl.Float64 for f in AIR_FIELDS}},
    "air_24h": {"sensor_id": pl.Utf8, **_WIN, **{f: pl.Float64 for f in AIR_FIELDS}},
    "air_8h_o3": {"sensor_id": pl.Utf8, "window_end_ms": pl.Int64, "tick_end_ms": pl.Int64, "o3_8h_ugm3": pl.Float64},
    "sensor_last_seen": {"sensor_id": pl.Utf8, "tick_end_ms": pl.Int64, "last_seen_ms": pl.Int64},
}

#: Lifecycle state tables: one frame per tick, the state as of that tick's end (:class:`StateAsOf`).
STATE_TABLES = frozenset({"cases", "incidents", "outages"})

class _TickTables:
    """Collects numpy columns of many ticks; one polars frame per table at the end.

    Id columns (``sensor_id``, ``segment_id``) arrive as integer positions into ``lookups`` and are
    gathered in one call, so no Python string is made per row.
    """

    def __init__(self, lookups: dict[str, pl.Series] | None = None) -> None:
        self.lookups = lookups or {}
        self.parts: dict[str, list[tuple[int, dict]]] = {name: [] for name in TICK_SCHEMAS}

    def add(self, name: str, n: int, cols: dict) -> None:
        if n:
            self.parts[name].append((n, cols))

    def frames(self) -> dict[str, pl.DataFrame]:
        out = {}
        for name, schema in TICK_SCHEMAS.items():
            parts = self.parts[name]
            data = {}
            for col, dtype in schema.items():
                chunks = [np.full(n, v) if np.isscalar(v) else np.asarray(v) for n, cols in parts for v in [cols[col]]]
                if dtype == pl.Utf8:
                    if chunks:
                        data[col] = series.take(self.lookups[col], np.concatenate(chunks)).alias(col)
                    else:
                        data[col] = pl.Series(col, [], dtype=pl.Utf8)
                else:
                    arr = np.concatenate(chunks) if chunks else np.zeros(0, np.int64 if dtype == pl.Int64 else np.float64)
                    if dtype == pl.Int64 and arr.dtype.kind in "iu":
                        data[col] = series.i64(col, arr)
                    elif dtype == pl.Int64:  # counts/times kept as floats where NaN marks a missing value
                        data[col] = series.i64_or_null(col, arr)
                    else:
                        data[col] = series.f64(col, arr, nan_to_null=True)
            out[name] = series.frame(data.values())
        return out


@dataclass
class TickBatch:
    """The stacked tables of every tick closed together (``ends`` ascending)."""

    ends: list[int]
    inputs: dict[str, pl.DataFrame]
    vitals: dict[str, pl.DataFrame]
    #: lifecycle state tables per tick end (``inputs`` holds the last tick's)
    states: dict[str, dict[int, pl.DataFrame]] = field(default_factory=dict)
    _parts: dict = field(default_factory=dict, repr=False)

    def tick_table(self, target: str, name: str, end: int) -> pl.DataFrame:
        """Table ``name`` of ``inputs``/``vitals`` restricted to the tick ending at ``end``."""
        frame = getattr(self, target)[name]
        if target == "inputs" and name in self.states:
            return self.states[name].get(end, frame)
        column = "tick_end_ms" if "tick_end_ms" in frame.columns else "window_end_ms"
        if name in STATE_TABLES or column not in frame.columns or len(self.ends) == 1:
            return frame
        key = (target, name)
        parts = self._parts.get(key)
        if parts is None:
            parts = self._parts[key] = frame.partition_by(column, as_dict=True)
        return parts.get((end,), frame.clear())


class _TickView(Mapping):
    """A read-only ``{name: frame}`` view of one tick inside a :class:`TickBatch`."""

    def __init__(self, batch: TickBatch, target: str, end: int):
        self._batch, self._target, self._end = batch, target, end

    def __getitem__(self, name: str) -> pl.DataFrame:
        if name not in getattr(self._batch, self._target):
            raise KeyError(name)
        return self._batch.tick_table(self._target, name, self._end)

    def __iter__(self):
        return iter(getattr(self._batch, self._target))

    def __len__(self) -> int:
        return len(getattr(self._batch, self._target))


class WindowResult:
    """One vital-sign tick: its input aggregates and vital-sign tables (mappings of name -> frame).

    The tables are cut out of the batch's stacked tables on first access, so a tick nobody reads
    (a fast replay with no live view) costs nothing. Build one by hand with plain dicts too.
    """

    def __init__(self, window_start_ms: int, window_end_ms: int, inputs=None, vitals=None, batch: "TickBatch | None" = None):
        self.window_start_ms = window_start_ms
        self.window_end_ms = window_end_ms
        self.batch = batch
        self.inputs = inputs if inputs is not None else _TickView(batch, "inputs", window_end_ms)
        self.vitals = vitals if vitals is not None else _TickView(batch, "vitals", window_end_ms)



class StateAsOf:
    """Lifecycle updates (grid cases, incidents, outages) applied in event-time order up to each
    tick's end, never up to the end of the batch that carried them: an update waits here until the
    tick holding its time closes, so a tick never sees a stage, a status or an entity from after its
    end, however the input was cut into batches (a whole file in one read included).

    ``tables``: kind -> (its :class:`brain.lifecycle.LifecycleTable`, output table name, schema).
    :meth:`add` holds applied updates back; :meth:`as_of` applies them tick by tick (an update at
    ``ts_ms <= end`` belongs to the tick ending at ``end``, as the vital signs count a stage reached
    by the tick) and returns each tick's state.

    Example (a case reported in the first tick and closed in the third, all in one batch):
        >>> from brain.lifecycle import LifecycleTable
        >>> table = LifecycleTable("case_id", {"reported": "reported_ms", "closed": "closed_ms"}, [])
        >>> schema = {"case_id": pl.Utf8, "reported_ms": pl.Int64, "closed_ms": pl.Int64, "status": pl.Utf8}
        >>> asof = StateAsOf({"grid_case": (table, "cases", schema)})
        >>> asof.add("grid_case", pl.DataFrame({"case_id": ["c1", "c1"], "status": ["reported", "closed"],
        ...                                     "ts_ms": [100, 700]}))
        >>> states = asof.as_of([300, 600])
        >>> states["cases"][300].rows(), states["cases"][600].rows()  # the close has not happened yet
        ([('c1', 100, None, 'reported')], [('c1', 100, None, 'reported')])
        >>> asof.as_of([900])["cases"][900].rows()
        [('c1', 100, 700, 'closed')]
    """

    def __init__(self, tables: dict[str, tuple]) -> None:
        self.tables = tables
        self.pending: dict[str, list[pl.DataFrame]] = {kind: [] for kind in tables}
        self.field_changes: set[int] = set()  # tick ends of the last as_of where a known entity's field changed
        self._fields: dict[str, dict] = {kind: {} for kind in tables}  # entity -> its fields' values so far

    def add(self, kind: str, updates: pl.DataFrame) -> None:
        """Applied updates of ``kind``, held until the ticks holding them close."""
        if updates.height:
            self.pending[kind].append(updates)

    def as_of(self, ends: list[int]) -> dict[str, dict[int, pl.DataFrame]]:
        """The state of every table as of each tick end ``ends`` (ascending), applying the updates
        due by then; a tick with no update shares the previous tick's frame."""
        out: dict[str, dict[int, pl.DataFrame]] = {}
        self.field_changes: set[int] = set()
        for kind, (table, name, schema) in self.tables.items():
            parts = self.pending[kind]
            pending = (parts[0] if len(parts) == 1 else pl.concat(parts, how="diagonal_relaxed")) if parts else None
            if pending is not None:
                # Sorted by time once (stable: arrival order among equal times), each tick's updates
                # are then one contiguous slice, not a filter over everything pending.
                pending = pending.sort("ts_ms", maintain_order=True)
                ts = pending.get_column("ts_ms").to_numpy()
            else:
                ts = np.zeros(0, np.int64)
            cuts = np.searchsorted(ts, np.asarray(ends, dtype=np.int64), side="right")
            by_end, frame, done = {}, None, 0
            for end, upto in zip(ends, cuts.tolist()):
                if upto > done:
                    updates = pending.slice(done, upto - done)
                    table.update(updates)
                    done = upto
                    frame = table.current(schema)
                    if self._note_fields(kind, table, updates):
                        self.field_changes.add(end)
                if frame is None:
                    frame = table.current(schema)
                by_end[end] = frame
            self.pending[kind] = [pending.slice(done)] if pending is not None and done < len(ts) else []
            out[name] = by_end
        return out

    def _note_fields(self, kind: str, table, updates: pl.DataFrame) -> bool:
        """Remember the fields ``updates`` set; True when one changes a field of an entity known
        before them (a few hundred updates a day: a plain loop)."""
        known, changed = self._fields[kind], False
        seen_before = set(known)
        order = np.argsort(updates.get_column("ts_ms").to_numpy(), kind="stable")
        columns = [updates.get_column(c).to_list() for c in (table.id_col, *table.fields)]  # no polars query: cheap
        for row in (tuple(col[i] for col in columns) for i in order):
            values = known.setdefault(row[0], {})
            for f, v in zip(table.fields, row[1:]):
                if v is not None:
                    changed |= row[0] in seen_before and values.get(f) != v
                    values[f] = v
        return changed

    def runs(self, ends: list[int]) -> list[list[int]]:
        """``ends`` cut where the last :meth:`as_of` saw a descriptive field of a known entity change
        (an incident's units set on dispatch, say): within a run, a state table as of the run's last
        tick, evaluated as of each tick from its stage times (as the vital signs do), is exact."""
        runs: list[list[int]] = []
        for end in ends:
            if not runs or end in self.field_changes:
                runs.append([])
            runs[-1].append(end)
        return runs

    def state(self) -> dict[str, pl.DataFrame | None]:
        return {kind: (pl.concat(parts, how="diagonal_relaxed") if parts else None) for kind, parts in self.pending.items()}

    def load(self, state: dict[str, pl.DataFrame | None]) -> None:
        """Restore the held updates (the tables themselves are restored by their owner, first)."""
        self.pending = {kind: ([state[kind]] if state.get(kind) is not None else []) for kind in self.tables}
        for kind, (table, _, _) in self.tables.items():
            frame = table.frame
            rows = frame.select(table.id_col, *table.fields).iter_rows() if frame is not None else []
            self._fields[kind] = {r[0]: {f: v for f, v in zip(table.fields, r[1:]) if v is not None} for r in rows}


class TickBuilder:
    """Builds the stacked input tables of consecutive closed ticks (see the module docstring).

    ``members``: per window kind, the registry indices of its sensors (the window's keys, in order);
    ``segment_of_sensor``: per registry index, the position of its road segment in ``segment_ids``
    (-1: none); ``sensor_ids``: the registry's ids. The builder keeps the last 24 closed air hours
    (``air_history``, checkpointed with :meth:`state` / :meth:`load`) for the moving air means.
    """

    def __init__(self, members: dict[str, np.ndarray], segment_of_sensor: np.ndarray, segment_ids: list[str],
                 sensor_ids: list[str], window_ms: int) -> None:
        self.members = members
        self.segment_of_sensor = segment_of_sensor
        self.segment_ids = list(segment_ids)
        self.window_ms = int(window_ms)
        self.lookups = {"sensor_id": pl.Series(list(sensor_ids), dtype=pl.Utf8),
                        "segment_id": pl.Series(self.segment_ids, dtype=pl.Utf8)}
        self.air_history: deque[ClosedWindow] = deque(maxlen=24)

    def build(self, ends: list[int], stacks: dict[str, ClosedWindow], last_seen: np.ndarray,
              closed_hours: list[ClosedWindow]) -> dict[str, pl.DataFrame]:
        """Every table of :data:`TICK_SCHEMAS` for the ticks ``ends``: ``stacks`` the closed windows
        per kind stacked over them, ``last_seen`` (tick, sensor) newest times as of each tick end
        (-1: never), ``closed_hours`` the air hours closed with them (in order)."""
        b = _TickTables(self.lookups)
        self._tick_columns(b, np.array(ends, dtype=np.int64), stacks, last_seen)
        self._air_columns(b, ends, list(closed_hours))
        return b.frames()

    def state(self) -> list[dict]:
        return [{"start_ms": w.start_ms, "end_ms": w.end_ms, "fields": list(w.fields), "sums": w.sums,
                 "counts": w.counts, "maxs": w.maxs} for w in self.air_history]

    def load(self, state: list[dict]) -> None:
        self.air_history = deque((ClosedWindow(**w) for w in state), maxlen=24)

    def _tick_columns(self, b: "_TickTables", ends: np.ndarray, stacks: dict[str, ClosedWindow], last_seen: np.ndarray) -> None:
        w = self.window_ms
        for name, (kind, spec) in SENSOR_TABLES.items():
            win = stacks.get(kind)
            if win is None:
                continue
            tick, key = np.nonzero(win.active_mask())
            end = ends[tick]
            cols = {"sensor_id": self.members[kind][key], "window_start_ms": end - w, "window_end_ms": end, "tick_end_ms": end}
            active = win.rows(tick, key)
            for column, fn in spec.items():
                cols[column] = fn(active)
            b.add(name, len(tick), cols)
        self._segment_traffic(b, stacks.get("traffic"), ends)
        self._segment_probe(b, stacks.get("probe"), ends)
        n_ticks, n_sensors = last_seen.shape
        b.add("sensor_last_seen", n_ticks * n_sensors, {
            "sensor_id": np.tile(np.arange(n_sensors), n_ticks), "tick_end_ms": np.repeat(ends, n_sensors),
            "last_seen_ms": np.where(last_seen >= 0, last_seen.astype(np.float64), np.nan).ravel(),
        })

    def _by_segment(self, win: ClosedWindow, kind: str):
        """(sum over each segment's detectors per tick, detectors counted) for a stacked window.

        ``np.bincount`` adds in (tick, sensor) order, so a segment's sums are bit-identical however
        many ticks are stacked.
        """
        seg = self.segment_of_sensor[self.members[kind]]
        n_ticks, n_seg = win.sums.shape[0], len(self.segment_ids)
        tick, sensor = np.nonzero(win.active_mask() & (seg >= 0)[None, :])
        slot = tick * n_seg + seg[sensor]
        size = n_ticks * n_seg

        def by_segment(values: np.ndarray) -> np.ndarray:
            return np.bincount(slot, weights=values[tick, sensor], minlength=size).reshape(n_ticks, n_seg)

        return by_segment, np.bincount(slot, minlength=size).reshape(n_ticks, n_seg)

    def _segment_rows(self, ends: np.ndarray, keep: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], dict]:
        tick, segment = np.nonzero(keep)
        end = ends[tick]
        return (tick, segment), {"segment_id": segment, "window_start_ms": end - self.window_ms, "window_end_ms": end, "tick_end_ms": end}

    def _segment_traffic(self, b: "_TickTables", win: ClosedWindow | None, ends: np.ndarray) -> None:
        if win is None:
            return
        by_segment, n_det = self._by_segment(win, "traffic")
        vol = by_segment(win.sum("volume_veh"))
        sv = by_segment(win.sum("speed_x_volume"))
        speed_sum, speed_n = by_segment(win.sum("speed_kmh")), by_segment(win.count("speed_kmh"))
        occ_sum, occ_n = by_segment(win.sum("occupancy_pct")), by_segment(win.count("occupancy_pct"))
        with np.errstate(invalid="ignore", divide="ignore"):
            # Volume-weighted speed; with no vehicles counted, the plain mean of reported speeds.
            speed = np.where(vol > 0, sv / np.where(vol > 0, vol, 1), speed_sum / np.maximum(speed_n, 1))
            occupancy = occ_sum / np.maximum(occ_n, 1)
            volume = vol / np.maximum(n_det, 1)  # each detector on a segment counts the same vehicles
        rows, cols = self._segment_rows(ends, n_det > 0)
        b.add("traffic", len(rows[0]), cols | {
            "volume_veh": volume[rows], "speed_kmh": speed[rows], "occupancy_pct": occupancy[rows], "n_readings": speed_n[rows],
        })

    def _segment_probe(self, b: "_TickTables", win: ClosedWindow | None, ends: np.ndarray) -> None:
        if win is None:
            return
        by_segment, _ = self._by_segment(win, "probe")
        tt_sum, tt_n = by_segment(win.sum("travel_time_s")), by_segment(win.count("travel_time_s"))
        rows, cols = self._segment_rows(ends, tt_n > 0)
        b.add("probe", len(rows[0]), cols | {"travel_time_s": tt_sum[rows] / tt_n[rows], "n_readings": tt_n[rows]})

    def _air_columns(self, b: "_TickTables", ends: list[int], closed_hours: list[ClosedWindow]) -> None:
        """Hourly, 24-hour and 8-hour-O3 air tables as of each tick (computed once per new hour).

        The ticks that see the same closed hours share one set of rows, repeated per tick.
        """
        runs: list[tuple[list[int], dict]] = []  # (tick ends, rows) per stretch of unchanged hours
        for end in ends:
            if not runs or (closed_hours and closed_hours[0].end_ms <= end):
                while closed_hours and closed_hours[0].end_ms <= end:
                    self.air_history.append(closed_hours.pop(0))
                if not self.air_history:
                    continue
                runs.append(([], self._air_parts()))
            runs[-1][0].append(end)
        for ticks, parts in runs:
            m = len(ticks)
            for name, (n, cols) in parts.items():
                repeated = {k: np.tile(v, m) if isinstance(v, np.ndarray) else v for k, v in cols.items()}
                b.add(name, n * m, repeated | {"tick_end_ms": np.repeat(np.array(ticks, dtype=np.int64), n)})

    def _air_parts(self) -> dict[str, tuple[int, dict]]:
        """Rows of the air tables from the hours closed so far (``air_history``)."""
        hours = list(self.air_history)
        last = hours[-1]

        stations = self.members["air"]

        def part(win: ClosedWindow, extra: dict) -> tuple[int, dict]:
            active = win.active()
            cols = {"sensor_id": stations[active], "window_start_ms": win.start_ms, "window_end_ms": win.end_ms}
            return len(active), cols | {k: v[active] for k, v in extra.items()}

        def moving(span_h: int) -> ClosedWindow:
            panes = [h for h in hours if h.end_ms > last.end_ms - span_h * HOUR_MS]
            sums, counts = sum(p.sums for p in panes), sum(p.counts for p in panes)
            return ClosedWindow(last.end_ms - span_h * HOUR_MS, last.end_ms, AIR_FIELDS, sums, counts, np.zeros_like(sums))

        day, eight = moving(24), moving(8)
        active = eight.active()
        return {
            "air_1h": part(last, {f: last.mean(f) for f in AIR_FIELDS}),
            "air_24h": part(day, {f: day.mean(f) for f in AIR_FIELDS}),
            "air_8h_o3": (len(active), {"sensor_id": stations[active], "window_end_ms": eight.end_ms, "o3_8h_ugm3": eight.mean("o3_ugm3")[active]}),
        }
