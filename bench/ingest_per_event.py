"""The ingest benchmark's per-event peer: the same computation as ``CityPipeline``, written the plain
way — json per line, dicts and sets for state, a record at a time; per closed tick the same input
tables as polars frames and the same one-tick vital-sign function. Only contracts are shared with
ours (record schemas, the gate's tables, settings, table names and columns), never its decoding,
checking or windowing code. Run by ``bench/ingest.py`` (``--child per-event``); its gate (a line to a
record or a counted reason) is ``bench/ingest_per_event_gate.py``.
"""
from __future__ import annotations

import time
from pathlib import Path

from ingest_data import read_batches
from ingest_digest import Untimed, digest, tick_figures
from ingest_per_event_gate import per_event_gate


def run_per_event(path: Path) -> dict:
    """The same computation as ours, a record at a time in plain Python (see the module docstring)."""
    import math
    from collections import deque

    import polars as pl

    from brain.city import demo_city_path, load_city
    from brain.pipeline import (AIR_FIELDS, HOUR_MS, LIFECYCLE_KINDS, PASS_THROUGH, TICK_SCHEMAS, WINDOW_FIELDS,
                                PipelineConfig, _lifecycle_schema)
    from brain.eventtime import ENTITY_KEYS
    from brain.vitals import compute_vitals

    # Shared with ours: the contracts only (record schemas, the gate's tables, settings, table names
    # and columns, the vital-sign function); none of its decoding, checking or windowing code.
    batches = read_batches(path)
    city = load_city(demo_city_path())
    config = PipelineConfig()
    w = config.window_ms
    lateness = config.allowed_lateness_s * 1000
    max_ahead = config.max_ahead_s * 1000
    retention = config.retention_days * 86_400_000

    # --- static lookups: the schema and the city, and the gate (bench/ingest_per_event_gate.py) ---
    entity = {kind: keys[0] for kind, keys in ENTITY_KEYS.items()}  # a lifecycle record's key adds entity and status
    schemas = {name: {c: t for c, t in schema.items() if c != "tick_end_ms"} for name, schema in TICK_SCHEMAS.items()}
    inf = math.inf
    dead: dict[str, int] = {}

    def dead_letter(code: str) -> None:
        dead[code] = dead.get(code, 0) + 1

    read, lookups = per_event_gate(city, dead_letter)
    specs, ids, segment_ids, seg_of = lookups.specs, lookups.ids, lookups.segment_ids, lookups.seg_of

    # --- state ---
    counters: dict[str, int] = {"records_in": 0, "applied": 0, "late": 0, "windows": 0}
    max_ts = None  # the city's clock: robust to a few wild sensor clocks (as brain.eventtime)
    clocks: dict = {}  # sensor -> newest applied event time
    wild_share, idle = config.wild_clock_share, config.source_idle_s * 1000
    next_tick = None
    seen_keys: dict[str, dict] = {kind: {} for kind in specs}  # kind -> {record key: ts_ms}
    windows: dict[str, dict] = {kind: {} for kind in WINDOW_FIELDS}  # kind -> {window start: {sensor: [sums, counts, maxs]}}
    air_hours: dict = {}  # hour start -> {sensor: [sums, counts, maxs]}
    air_history: deque = deque(maxlen=24)  # closed hours (start, {sensor: acc}), oldest first
    newest_seen: dict = {}  # window start -> {sensor: newest ts_ms}
    last_seen = [-1] * len(ids)
    lifecycle: dict[str, dict] = {kind: {} for kind in LIFECYCLE_KINDS}  # kind -> {entity id: state}
    held_lifecycle: list[tuple[int, str, dict]] = []  # (ts, kind, record) of ticks not closed yet
    ticks: dict = {}  # tick end -> figures for the digest (taken with the clock paused)
    untimed = Untimed()

    def add(acc_by_sensor: dict, sensor: int, values: list) -> None:
        acc = acc_by_sensor.get(sensor)
        if acc is None:
            n = len(values)
            acc = acc_by_sensor[sensor] = [[0.0] * n, [0] * n, [-inf] * n]
        sums, counts, maxs = acc
        for j, v in enumerate(values):
            if v is not None:
                sums[j] += v
                counts[j] += 1
                if v > maxs[j]:
                    maxs[j] = v

    def apply(kind: str, rec: dict, sensor: int, ts: int) -> None:
        if kind in windows:
            if kind == "traffic":
                volume, speed = rec["volume_veh"], rec["speed_kmh"]
                values = [volume, speed * volume, speed, rec["occupancy_pct"]]
            elif kind == "noise":
                values = [10.0 ** (rec["laeq_db"] / 10.0), rec["lamax_db"]]  # energy: the right mean for decibels
            else:
                values = [rec[f] for f in WINDOW_FIELDS[kind]]
            add(windows[kind].setdefault(ts // w * w, {}), sensor, values)
            if kind == "air":
                add(air_hours.setdefault(ts // HOUR_MS * HOUR_MS, {}), sensor, values)
        elif kind in lifecycle:
            held_lifecycle.append((ts, kind, rec))  # applied when the tick holding ts closes (state as of each tick's end)
        newest = newest_seen.setdefault(ts // w * w, {})
        if newest.get(sensor, -1) < ts:
            newest[sensor] = ts

    def apply_lifecycle(kind: str, rec: dict, ts: int) -> None:
        id_col, stages, fields, _ = LIFECYCLE_KINDS[kind]
        table = lifecycle[kind]
        state = table.get(rec[id_col])
        if state is None:
            state = table[rec[id_col]] = {"stages": dict.fromkeys(stages.values()), "fields": {}, "status": None, "updated_ms": None}
        col = stages[rec["status"]]
        if state["stages"][col] is None or ts < state["stages"][col]:
            state["stages"][col] = ts
        for f in fields:  # the newest non-null value of each field
            v = rec[f]
            if v is not None and (f not in state["fields"] or ts >= state["fields"][f][0]):
                state["fields"][f] = (ts, v)
        if state["updated_ms"] is None or ts >= state["updated_ms"]:
            state["status"], state["updated_ms"] = rec["status"], ts

    def mean(acc, j):
        return acc[0][j] / acc[1][j] if acc[1][j] > 0 else None

    def frame(name: str, rows: dict) -> pl.DataFrame:
        return pl.DataFrame(rows, schema=schemas[name])

    def maximum(acc, j):
        return acc[2][j] if acc[1][j] > 0 else None

    # Per-sensor tables: table -> (window kind, its columns from a sensor's [sums, counts, maxs]).
    per_sensor = {
        "noise": ("noise", lambda a: [10.0 * math.log10(mean(a, 0)) if a[1][0] > 0 else None, maximum(a, 1)]),
        "utility": ("utility", lambda a: [mean(a, 0), mean(a, 1), mean(a, 2)]),
        "water_quality": ("water_quality", lambda a: [mean(a, 0), mean(a, 1), mean(a, 2)]),
        "weather": ("weather", lambda a: [mean(a, 0), mean(a, 1), mean(a, 2), mean(a, 3)]),
        "hazard": ("hazard", lambda a: [mean(a, 0), maximum(a, 0)]),
        "detector": ("traffic", lambda a: [mean(a, 2), mean(a, 3), a[0][0]]),  # each detector on its own
        "air": ("air", lambda a: [mean(a, j) for j in range(len(AIR_FIELDS))]),  # the tick's means beside the hours
    }

    def sensor_tables(start: int, end: int, closed: dict) -> dict[str, pl.DataFrame]:
        """Per-sensor and per-segment window tables of one tick, sensors and segments in registry order."""
        out = {}
        for name, (kind, values) in per_sensor.items():
            columns = list(schemas[name])
            rows = {c: [] for c in columns}
            for sensor in sorted(s for s, acc in closed.get(kind, {}).items() if any(acc[1])):
                acc = closed[kind][sensor]
                rows["sensor_id"].append(ids[sensor])
                rows["window_start_ms"].append(start)
                rows["window_end_ms"].append(end)
                for c, v in zip(columns[3:], values(acc)):
                    rows[c].append(v)
            out[name] = frame(name, rows)
        # Segments: sums over their detectors (in registry order), then volume-weighted speed.
        seg: dict = {}
        for sensor in sorted(closed.get("traffic", {})):
            s = seg_of[sensor]
            if s < 0 or not any(closed["traffic"][sensor][1]):
                continue
            sums, counts, _ = closed["traffic"][sensor]
            r = seg.setdefault(s, [0.0, 0.0, 0.0, 0, 0.0, 0, 0])
            r[0] += sums[0]
            r[1] += sums[1]
            r[2] += sums[2]
            r[3] += counts[2]
            r[4] += sums[3]
            r[5] += counts[3]
            r[6] += 1
        rows = {c: [] for c in schemas["traffic"]}
        for s in sorted(seg):
            vol, sv, speed_sum, speed_n, occ_sum, occ_n, n_det = seg[s]
            rows["segment_id"].append(segment_ids[s])
            rows["window_start_ms"].append(start)
            rows["window_end_ms"].append(end)
            # With no vehicles counted, the plain mean of reported speeds.
            rows["speed_kmh"].append(sv / vol if vol > 0 else speed_sum / max(speed_n, 1))
            rows["occupancy_pct"].append(occ_sum / max(occ_n, 1))
            rows["volume_veh"].append(vol / max(n_det, 1))  # each detector on a segment counts the same vehicles
            rows["n_readings"].append(speed_n)
        out["traffic"] = frame("traffic", rows)
        seg = {}
        for sensor in sorted(closed.get("probe", {})):
            s = seg_of[sensor]
            if s < 0 or not any(closed["probe"][sensor][1]):
                continue
            sums, counts, _ = closed["probe"][sensor]
            r = seg.setdefault(s, [0.0, 0])
            r[0] += sums[0]
            r[1] += counts[0]
        rows = {c: [] for c in schemas["probe"]}
        for s in sorted(seg):
            tt_sum, tt_n = seg[s]
            if tt_n > 0:
                rows["segment_id"].append(segment_ids[s])
                rows["window_start_ms"].append(start)
                rows["window_end_ms"].append(end)
                rows["travel_time_s"].append(tt_sum / tt_n)
                rows["n_readings"].append(tt_n)
        out["probe"] = frame("probe", rows)
        return out

    def air_tables() -> dict[str, pl.DataFrame]:
        """Hourly, 24-hour and 8-hour O3 means from the closed hours (``air_history``)."""
        last_start, last = air_history[-1]
        last_end = last_start + HOUR_MS
        out = {}
        rows = {c: [] for c in schemas["air_1h"]}
        for sensor in sorted(s for s, acc in last.items() if any(acc[1])):
            rows["sensor_id"].append(ids[sensor])
            rows["window_start_ms"].append(last_start)
            rows["window_end_ms"].append(last_end)
            for j, f in enumerate(AIR_FIELDS):
                rows[f].append(mean(last[sensor], j))
        out["air_1h"] = frame("air_1h", rows)
        moving = {}
        for span_h in (24, 8):  # sliding windows over the hourly panes
            acc: dict = {}
            for start, panes in air_history:
                if start + HOUR_MS > last_end - span_h * HOUR_MS:
                    for sensor, (sums, counts, _) in panes.items():
                        a = acc.setdefault(sensor, [[0.0] * len(AIR_FIELDS), [0] * len(AIR_FIELDS)])
                        for j in range(len(AIR_FIELDS)):
                            a[0][j] += sums[j]
                            a[1][j] += counts[j]
            moving[span_h] = {s: a for s, a in acc.items() if any(c > 0 for c in a[1])}
        rows = {c: [] for c in schemas["air_24h"]}
        for sensor in sorted(moving[24]):
            a = moving[24][sensor]
            rows["sensor_id"].append(ids[sensor])
            rows["window_start_ms"].append(last_end - 24 * HOUR_MS)
            rows["window_end_ms"].append(last_end)
            for j, f in enumerate(AIR_FIELDS):
                rows[f].append(mean(a, j))
        out["air_24h"] = frame("air_24h", rows)
        o3 = AIR_FIELDS.index("o3_ugm3")
        rows = {c: [] for c in schemas["air_8h_o3"]}
        for sensor in sorted(moving[8]):
            rows["sensor_id"].append(ids[sensor])
            rows["window_end_ms"].append(last_end)
            rows["o3_8h_ugm3"].append(mean(moving[8][sensor], o3))
        out["air_8h_o3"] = frame("air_8h_o3", rows)
        return out

    def lifecycle_tables() -> dict[str, pl.DataFrame]:
        out = {}
        for kind, (id_col, stages, fields, name) in LIFECYCLE_KINDS.items():
            schema = _lifecycle_schema(kind)
            rows = {c: [] for c in schema}
            for ident, state in lifecycle[kind].items():
                rows[id_col].append(ident)
                for col, t in state["stages"].items():
                    rows[col].append(t)
                for f in fields:
                    rows[f].append(state["fields"][f][1] if f in state["fields"] else None)
                rows["status"].append(state["status"])
                rows["updated_ms"].append(state["updated_ms"])
            out[name] = pl.DataFrame(rows, schema=schema)
        return out

    def close_ticks() -> None:
        """Close every tick the watermark has passed: tables, vital signs, then forget what is done.
        (Ours also jumps over stretches of more than a day with no record; the day here has none.)"""
        nonlocal next_tick
        if max_ts is None or next_tick is None or max_ts - lateness < next_tick:
            return
        wm = max_ts - lateness
        ends = list(range(next_tick, wm + 1, w))
        next_tick = ends[-1] + w
        hours = sorted(s for s in air_hours if s + HOUR_MS <= wm)
        pending = [(s, air_hours.pop(s)) for s in hours]
        held_lifecycle.sort(key=lambda item: item[0])
        states = None
        air = None
        for end in ends:
            due = 0
            while due < len(held_lifecycle) and held_lifecycle[due][0] <= end:
                apply_lifecycle(held_lifecycle[due][1], held_lifecycle[due][2], held_lifecycle[due][0])
                due += 1
            if due or states is None:
                del held_lifecycle[:due]
                states = lifecycle_tables()  # the state as of this tick's end
            start = end - w
            closed = {kind: windows[kind].pop(start) for kind in windows if start in windows[kind]}
            inputs = sensor_tables(start, end, closed)
            for sensor, ts in newest_seen.pop(start, {}).items():
                if ts > last_seen[sensor]:
                    last_seen[sensor] = ts
            inputs["sensor_last_seen"] = frame("sensor_last_seen", {
                "sensor_id": ids, "last_seen_ms": [t if t >= 0 else None for t in last_seen]})
            while pending and pending[0][0] + HOUR_MS <= end:
                air_history.append(pending.pop(0))
                air = None
            if air_history:
                if air is None:
                    air = air_tables()
                inputs.update(air)
            else:
                inputs.update({name: frame(name, {c: [] for c in schemas[name]}) for name in ("air_1h", "air_24h", "air_8h_o3")})
            inputs.update(states)
            vitals = compute_vitals({k: v for k, v in inputs.items() if k not in PASS_THROUGH}, city, end)
            with untimed:
                ticks[str(end)] = tick_figures(inputs, vitals["city"], vitals["segment_traffic"])
            counters["windows"] += 1
        # Forget what the watermark has passed: windows that ended before the first tick (as ours
        # drops them), duplicate keys (a copy would be late now) and entities past retention.
        for kind in windows:
            for start in [s for s in windows[kind] if s + w <= wm]:
                del windows[kind][start]
        for start in [s for s in newest_seen if s + w <= wm]:
            del newest_seen[start]
        for kind, keys in seen_keys.items():
            seen_keys[kind] = {k: ts for k, ts in keys.items() if ts >= wm}
        for kind, (_, stages, _, _) in LIFECYCLE_KINDS.items():
            final = list(stages.values())[-1]
            table = lifecycle[kind]
            for ident in [i for i, s in table.items() if s["stages"][final] is not None and s["stages"][final] < wm - retention]:
                del table[ident]

    from brain.vitals.batch import warm_up

    warm_up()  # the vital-sign kernels compiled (or loaded) before the clock starts, as for ours
    t0, c0 = time.perf_counter(), time.process_time()
    for b in batches:
        # 1. Read and check every line; the records that pass wait, by kind, for the event-time judgement.
        kinds_seen: dict = {}
        good: dict[str, list] = {}
        for line in b.split(b"\n"):
            if not line.strip():
                continue
            counters["records_in"] += 1
            got = read(line, kinds_seen)
            if got is not None:
                kind, rec, sensor = got
                good.setdefault(kind, []).append((rec, sensor[0]))
        # 2. Event time against the watermark as it stood before the batch; too far ahead: against
        # the sensor's own clock as it stood before the batch, moved on by its earlier records of the
        # kind in this batch that were not ahead, never below the kind's (lower) median time when
        # several sensors share the batch; a sensor without a recent clock against the city's clock
        # or the batch's 99th percentile (every kind's records together). Then duplicates.
        batch_max = earliest = None
        ts_sorted = sorted(rec["ts_ms"] for recs in good.values() for rec, _ in recs)
        if ts_sorted:
            last = len(ts_sorted) - 1
            low, high = ts_sorted[math.ceil(0.01 * last)], ts_sorted[math.floor(0.99 * last)]
        clock_before: dict = {}  # sensor -> its clock before this batch, once the batch has moved it
        for kind in kinds_seen:
            recs = good.get(kind)
            if not recs:
                continue
            keys = seen_keys[kind]
            ident = entity.get(kind)
            kind_ts = sorted(rec["ts_ms"] for rec, _ in recs)
            several = len({sensor for _, sensor in recs}) > 1
            floor = kind_ts[(len(kind_ts) - 1) // 2] if several else None
            own_now: dict = {}  # sensor -> its clock as it stands at this record (this kind, this batch)
            for rec, sensor in recs:
                ts = rec["ts_ms"]
                if max_ts is None:  # no history: a lone wild clock must not open windows years away
                    late, ahead = ts < low - max_ahead, ts > high + max_ahead
                else:
                    late = ts < max_ts - lateness
                    if sensor not in own_now:
                        own = clock_before[sensor] if sensor in clock_before else clocks.get(sensor)
                        active = own is not None and own >= max_ts - idle
                        own_now[sensor] = (max(own, floor) if floor is not None else own) if active else None
                    now = own_now[sensor]
                    if now is None:
                        ahead = ts > max(max_ts, high) + max_ahead
                    else:
                        ahead = ts > now + max_ahead
                        if not ahead and ts > now:
                            own_now[sensor] = ts
                if late:
                    counters["late"] += 1
                    continue
                if ahead:
                    dead_letter("too_far_ahead")
                    continue
                key = (sensor, ts) if ident is None else (sensor, ts, rec[ident], rec["status"])
                if key in keys:
                    dead_letter("duplicate")
                    continue
                keys[key] = ts
                counters["applied"] += 1
                apply(kind, rec, sensor, ts)
                if ts > clocks.get(sensor, ts - 1):
                    if sensor not in clock_before:
                        clock_before[sensor] = clocks.get(sensor)
                    clocks[sensor] = ts
                earliest = ts if earliest is None or ts < earliest else earliest
                batch_max = ts if batch_max is None or ts > batch_max else batch_max
        if next_tick is None and earliest is not None:  # the first tick holds the batch's earliest applied record
            next_tick = earliest // w * w + w
        if batch_max is not None:
            # The (f+1)-th newest clock of the sensors not idle, f a share of them (>= 1 from two on).
            active = sorted((t for t in clocks.values() if max_ts is None or t >= max_ts - idle), reverse=True)
            f = min(max(int(wild_share * len(active)), 1), len(active) - 1)
            if max_ts is None or active[f] > max_ts:
                max_ts = active[f]
        close_ticks()
    # End of the stream: close every window that holds data.
    if max_ts is not None:
        newest = max(max_ts, *clocks.values())
        max_ts = (newest // w) * w + w + lateness  # the watermark at the end of the tick holding the newest record
        close_ticks()
    seconds = time.perf_counter() - t0 - untimed.seconds
    cpu_seconds = time.process_time() - c0 - untimed.cpu_seconds
    result = digest(counters["records_in"], counters["applied"], dead, counters["late"], counters["windows"], ticks)
    return {"records": counters["records_in"], "seconds": seconds, "cpu_seconds": cpu_seconds, "windows": counters["windows"],
            "applied": counters["applied"], "dead": sum(dead.values()), "late": counters["late"], "digest": result}
