"""Sensor faults as a stream: a window operator that judges every periodic sensor each tick.

Each vital-sign tick, the per-sensor window means of every family (traffic detectors, noise, utility
and heat meters, water quality, weather, hazard sources, air stations) go
through :func:`brain.kernels.sensorfault.fault_tick` (stuck, spikes, drift against peers) and every
sensor's last-seen time through :func:`brain.kernels.sensorfault.silence_tick` (dropout). Peers are
the sensor's neighbours: for a traffic detector its segment's probe speed (another source, in which
the road's own rush hour cancels), else the sensors of the same type, quantity and unit in its
district when there are three or more, else in the city (weather stations, which report every 10
minutes at their own phase, against their peers' latest readings); a hazard sensor, whose source's
other sensors follow their own processes, against its own level. Two sensors of a district
drifting the same way at once are the district changing (a pollution episode), not two faults; of
two peers drifting opposite ways the one that moved further is blamed. Readings outside a sensor's
valid range (dead letters) and tick means at the top of it (a probe saturating at full scale) are
spike evidence too. What they
learn is pooled per type, so judging starts in the first hour of a cold start rather than after
days of a sensor's own history.

The output table ``sensor_faults`` has one row per suspected fault per tick: ``sensor_id``,
``type``, ``family``, ``district``, ``cell_id``, ``segment_id``, ``lon``, ``lat``, ``fault``
(stuck, spikes, drift, dropout), ``score`` (1.0 while suspected), ``evidence`` (what was seen, in
words) and ``window_end_ms``. ``rules/sensor_faults.yaml`` pages sensor maintenance from it and
inhibits the city-event alerts a faulty sensor would raise.

Example (a noise monitor stuck from 01:00 on a cold start at midnight):
    >>> from brain.city import demo_city_path, load_city
    >>> from brain.pipeline import CityPipeline
    >>> from streams.sim import Simulator
    >>> from streams.sim.scenarios import Scenario
    >>> city = load_city(demo_city_path())
    >>> op = FaultOperator(city)
    >>> sim = Simulator(city, seed=3, scenarios=[], faults=[Scenario(type="sensor_stuck", target="NS-01",
    ...     start_ms=Simulator(city).start_ms + 3_600_000, duration_s=3600)])
    >>> pipe = CityPipeline(city, window_operators=[op])
    >>> rows = [w.batch.vitals["sensor_faults"] for b in sim.batches(sim.start_ms + 6_000_000, batch_s=300)
    ...         for w in pipe.ingest_frames(b.frames).windows + pipe.advance_to(b.end_ms).windows]
    >>> hits = [r.filter(pl.col("sensor_id") == "NS-01") for r in rows if r.height]
    >>> sorted({f for h in hits for f in h["fault"]})
    ['stuck']
"""
from __future__ import annotations

import numpy as np
import polars as pl

from brain import checkpoint, series
from brain.city.model import utility_field
from brain.faults import SENSOR_FAULTS_SCHEMA
from brain.kernels import sensorfault as sf
from brain.pipeline import AIR_FIELDS, TickBatch

HOUR_MS = 3_600_000
#: families judged for drift against their own level (the kernel sees no peers and a constant
#: reference, so its ring holds the sensor's own log level in 15-minute blocks over 4 h): a hazard
#: source has two or three sensors, each following its own process (a tank level, a gas reading),
#: often only one of the same quantity and unit (no median of two peers: never judged), and the
#: ratio of two independent wanders is noisier than either (up to 0.23 against peers on clean days).
SELF_REFERENCE = frozenset({"hazard"})
#: families whose drift must be larger than the kernel's DRIFT_MIN_LOG: a hazard sensor's own level
#: wanders by itself (a tank filling, a working point moving); a failing sensor walks further (a
#: ±50 % drift is 0.38 or more in log by its end). Stuck, spikes and dropout are judged as for every family.
DRIFT_MIN_LOG_BY_FAMILY = {"hazard": 0.3}
#: signed fields (their scale): the kernels judge spikes and drift on the log of the primary value, which
#: a temperature around or below 0 °C does not have (a -1 °C reading spiking to -4 °C was read as the
#: floor both times). They get exp(asinh(x / scale)) instead: positive, log-like far from 0 (a 15 °C
#: reading drifting 50 % moves it as log would) and linear near 0 (a 3 °C jump from 0.5 °C is an
#: excursion, a 0.2 °C wobble is not); equal readings stay equal, so stuck is judged as before.
SIGNED_SCALE = {"temp_c": 1.0}
#: readings outside the sensor's own valid range that make spikes (one is a glitch) within the last
#: hour, or within its last SPIKE_REJECTED_READINGS reports for a sensor that reports less often: a
#: weather station reports every 10 minutes, and a spike fault hits one reading in four or so, so an
#: hour of it often holds a single out-of-range reading (two in an hour missed 1 in 3 weather spikes)
SPIKE_REJECTED_MIN = 2
SPIKE_REJECTED_READINGS = 12
#: the longest span out-of-range readings are counted over (and kept)
REJECTED_KEEP_MS = 4 * HOUR_MS
#: a tick whose primary value sits at or above the top of the sensor's valid range (full scale) counts
#: as an out-of-range reading: a spiking probe that saturates reads the rail, not beyond it, wherever its
#: valid range is the quantity's physical one (pH 0-14: a water-quality spike x2.5 reads 14.0 and is no
#: dead letter; 1 in 2 water-quality spike faults on random days made only two separate excursions in
#: 90 min, below the kernel's three). The bottom of the range is no evidence: 0 is an ordinary floor.
FULL_SCALE_IS_SPIKE = True

#: family -> (input table, fields, primary field (None: per sensor), sensor types, ticks per drift block)
FAMILIES: dict[str, tuple[str, list[str], str | None, frozenset[str], int]] = {
    "traffic": ("detector", ["speed_kmh", "occupancy_pct", "volume_veh"], "speed_kmh", frozenset({"loop", "video", "radar"}), 3),
    "noise": ("noise", ["laeq_db", "lamax_db"], "laeq_db", frozenset({"noise"}), 3),
    "utility": ("utility", ["pressure_kpa", "flow_m3h", "load_kw"], None,
                frozenset({"utility_power", "utility_water", "utility_gas", "utility_heat"}), 3),
    "water_quality": ("water_quality", ["ph", "turbidity_ntu", "dissolved_oxygen_mgl"], "ph", frozenset({"water_quality"}), 3),
    "weather": ("weather", ["temp_c", "humidity_pct", "wind_ms", "rain_mm"], "temp_c", frozenset({"weather"}), 3),
    "hazard": ("hazard", ["value", "value_max"], "value", frozenset({"hazard"}), 3),
    # the tick's means, not the hourly ones: a stuck or spiking station shows within the hour
    "air": ("air", list(AIR_FIELDS), "pm25_ugm3", frozenset({"air"}), 3),
}

#: families that report less often than the 5-minute tick (weather stations: every 10 minutes, at
#: their own phase): a station is held against its peers' latest readings of the last
#: PEER_CARRY_MS, not only against those that fell in the same tick, which for some stations were
#: never two (their drift was never judged: 1 of 3 weather drifts caught on 10 random days)
CARRY_PEERS = frozenset({"weather"})
PEER_CARRY_MS = 15 * 60_000

SCHEMA = SENSOR_FAULTS_SCHEMA


class _Family:
    """One family's sensors, peers and kernel state."""

    def __init__(self, name: str, sensors: list, table: str, fields: list[str], primary: str | None, block_ticks: int):
        self.name, self.table, self.fields, self.block_ticks = name, table, fields, block_ticks
        self.sensors = sensors
        self.ids = [s.id for s in sensors]
        self.index = {sid: i for i, sid in enumerate(self.ids)}
        self._rows = _IdRows(self.index)
        prim_field = [primary or utility_field(s) for s in sensors]
        self.prim = np.array([fields.index(f) for f in prim_field], dtype=np.int64)
        # peers measure the same quantity in the same unit (a tank level is no peer of a gas detector)
        kinds = [f"{s.type}/{f}/{s.unit}" for s, f in zip(sensors, prim_field)]
        types = sorted(set(kinds))
        self.ktype = np.array([types.index(k) for k in kinds], dtype=np.int64)
        peers = []
        for i, s in enumerate(sensors):
            same = [j for j in range(len(sensors)) if j != i and kinds[j] == kinds[i]]
            if name == "traffic":
                # no peers: the segment's probe speed is the reference, in which the road's own rush
                # hour cancels (district detectors congest at other times) and which is another
                # source (a drifting detector beside one other on its segment would drag it along)
                peers.append([])
                continue
            # the district's when it has enough for a median that one faulty peer cannot move
            near = [j for j in same if sensors[j].district == s.district]
            peers.append(near if len(near) >= 3 else same)
        self.peer_ptr, self.peer_idx = sf.peers_csr(peers)
        # carried peers: the kernel sees no peers and gets their latest readings' median as the reference
        self.carry = name in CARRY_PEERS
        self.own = name in SELF_REFERENCE
        self.kernel_peers = sf.peers_csr([[] for _ in sensors]) if self.carry or self.own else (self.peer_ptr, self.peer_idx)
        self.last_val = np.full(len(sensors), np.nan)  # latest primary value (carried peers)
        self.last_ms = np.full(len(sensors), -np.inf)
        self.state = sf.fault_state(len(sensors), len(fields), len(types))
        # judged against its own level and, where it has two peers or more, against them too (a short
        # drift shows sooner against peers, a sensor with one peer only against itself)
        self.peer_state = sf.fault_state(len(sensors), len(fields), len(types)) if self.own else None

    def rows_of(self, frame: pl.DataFrame) -> np.ndarray:
        """Each row's sensor index in the family (-1: not one of its sensors)."""
        return self._rows(frame["sensor_id"])

    def full_scale(self, frame: pl.DataFrame, vmax: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Indices of the sensors whose primary tick value is at or above ``vmax`` (their valid maximum)."""
        if frame.height == 0:
            return np.zeros(0, dtype=np.int64)
        rows = self.rows_of(frame) if rows is None else rows
        hit = np.zeros(frame.height, dtype=bool)
        for f, name in enumerate(self.fields):
            if name in frame.columns:
                col = series.floats(frame[name])
                mine = (rows >= 0) & (self.prim[np.maximum(rows, 0)] == f)
                hit |= mine & (col >= vmax[np.maximum(rows, 0)])
        return np.unique(rows[hit])

    def carried_ref(self, vals: np.ndarray, end: int) -> np.ndarray:
        """Each sensor's reference: the median of its peers' latest primary values of the last
        ``PEER_CARRY_MS`` (NaN: fewer than the kernel's ``DRIFT_MIN_PEERS``)."""
        x = vals[np.arange(len(self.ids)), self.prim]
        now = ~np.isnan(x)
        self.last_val[now], self.last_ms[now] = x[now], float(end)
        fresh = self.last_ms > end - PEER_CARRY_MS
        ref = np.full(len(self.ids), np.nan)
        for k in range(len(self.ids)):
            peers = self.peer_idx[self.peer_ptr[k]:self.peer_ptr[k + 1]]
            got = self.last_val[peers[fresh[peers]]]
            if len(got) >= sf.DRIFT_MIN_PEERS:
                ref[k] = np.median(got)
        return ref

    def common_mode(self, flags: np.ndarray, dtot: np.ndarray) -> None:
        """Two sensors of a kind in one district drifting the same way is the district changing
        (a pollution episode against the city's other stations), not two faults: unflag them."""
        drifting = np.flatnonzero(flags & sf.FLAG_DRIFT)
        if len(drifting) < 2:
            return
        by_place: dict[tuple, list[int]] = {}
        for k in drifting:
            by_place.setdefault((self.sensors[k].district, int(self.ktype[k]), bool(dtot[k] > 0)), []).append(int(k))
        for ks in by_place.values():
            if len(ks) >= 2:
                flags[ks] &= ~sf.FLAG_DRIFT

    def dragged(self, flags: np.ndarray, dtot: np.ndarray) -> None:
        """A sensor held against few peers (a hazard source's two others) is dragged the other way
        by a drifting peer (a median of two is their mean: half the drift). Unflag a drifting sensor
        one of whose peers moved the opposite way by more: that peer is the one walking away."""
        for k in np.flatnonzero(flags & sf.FLAG_DRIFT):
            peers = self.peer_idx[self.peer_ptr[k]:self.peer_ptr[k + 1]]
            if len(peers) and np.any((dtot[peers] * dtot[k] < 0) & (np.abs(dtot[peers]) > abs(dtot[k]))):
                flags[k] &= ~sf.FLAG_DRIFT

    def tick(self, frame: pl.DataFrame, ref: np.ndarray, end: int = 0,
             rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        vals = np.full((len(self.ids), len(self.fields)), np.nan)
        if frame.height:
            rows = self.rows_of(frame) if rows is None else rows
            ok = rows >= 0
            for f, name in enumerate(self.fields):
                if name in frame.columns:
                    col = series.floats(frame[name])
                    if name in SIGNED_SCALE:
                        z = col / SIGNED_SCALE[name]
                        col = z + np.sqrt(z * z + 1.0)  # = exp(asinh(z)), > 0 for every z
                    vals[rows[ok], f] = col[ok]
        if self.carry:
            ref = self.carried_ref(vals, end)
        elif self.own:
            ref = np.ones(len(self.ids))  # log 1 = 0: the drift ring holds the sensor's own log level
        out = sf.fault_tick(vals, ref, self.ktype, self.prim, *self.kernel_peers, self.block_ticks, sf.STUCK_LOG_P,
                            *self.state)
        if self.peer_state is None:
            return out
        flags, logp, events, dtot = out
        pflags, _, _, ptot = sf.fault_tick(vals, np.full(len(self.ids), np.nan), self.ktype, self.prim, self.peer_ptr,
                                           self.peer_idx, self.block_ticks, sf.STUCK_LOG_P, *self.peer_state)
        by_peers = (pflags & sf.FLAG_DRIFT).astype(bool) & (np.abs(ptot) > np.abs(dtot))
        flags = flags | (pflags & sf.FLAG_DRIFT)
        return flags, logp, events, np.where(by_peers, ptot, dtot)


class _IdRows:
    """``ids`` -> each id's position in ``index`` (-1: not in it), remembered for the last ids
    column: a tick's tables list mostly the same sensors in the same order as the last tick's, and
    a comparison in polars costs far less than a dict lookup per row in Python (~1 ms a tick at
    5,000 sensors). The array handed out is read-only (shared between calls)."""

    def __init__(self, index: dict):
        self.index, self._ids, self._rows = index, None, None

    def __call__(self, ids: pl.Series) -> np.ndarray:
        if self._ids is None or not ids.equals(self._ids, check_dtypes=True):
            self._rows = np.array([self.index.get(s, -1) for s in ids.to_list()], dtype=np.int64)
            self._rows.setflags(write=False)
            self._ids = ids
        return self._rows


class FaultOperator:
    """Window operator ``op(batch) -> {"sensor_faults": frame}`` with ``snapshot()``/``restore()``.

    See the module docstring for what it judges and the table it writes.
    """

    def __init__(self, city):
        self.city = city
        self.families: dict[str, _Family] = {}
        for name, (table, fields, primary, types, block) in FAMILIES.items():
            members = [s for s in city.sensors if s.type in types]
            if members:
                self.families[name] = _Family(name, members, table, fields, primary, block)
        self.family_of = {sid: fam.name for fam in self.families.values() for sid in fam.ids}
        self.monitored = [s for fam in self.families.values() for s in fam.sensors]
        self.mon_index = {s.id: i for i, s in enumerate(self.monitored)}
        self._seen_rows = _IdRows(self.mon_index)
        self.silence = sf.silence_state(len(self.monitored))
        self.last_seen = np.full(len(self.monitored), -1.0)
        self._seg_km = {g.id: g.length_m / 1000.0 for g in city.segments if g.length_m > 0}
        # out-of-range readings (dead letters) per monitored sensor: (sensor index, event time)
        self._rejected_idx = np.zeros(0, dtype=np.int64)
        self._rejected_ts = np.zeros(0, dtype=np.int64)
        self._range = {s.id: (s.valid_min, s.valid_max) for s in self.monitored}
        # per family: each sensor's valid maximum (inf: none), for readings at full scale
        self._vmax = {fam.name: np.array([s.valid_max if s.valid_max is not None and s.valid_min is not None
                                          and s.valid_max > s.valid_min else np.inf for s in fam.sensors])
                      for fam in self.families.values()}

    def observe_rejected(self, dead: pl.DataFrame | None) -> None:
        """Take a batch's dead letters: readings outside the sensor's own valid range are spike
        evidence (a spike often leaves the range and never reaches the window means). The driver
        calls this with each batch's ``dead`` frame (``reason_code``, ``raw``)."""
        if dead is None or dead.height == 0 or "raw" not in dead.columns:
            return
        rows = dead.filter(pl.col("reason_code") == "out_of_sensor_range").select(
            pl.col("raw").str.extract(r'"sensor_id"\s*:\s*"([^"]+)"').alias("sensor_id"),
            pl.col("raw").str.extract(r'"ts_ms"\s*:\s*(\d+)').cast(pl.Int64, strict=False).alias("ts_ms"))
        if rows.height == 0:
            return
        idx = np.array([self.mon_index.get(s, -1) if s else -1 for s in rows["sensor_id"].to_list()], dtype=np.int64)
        ts = rows["ts_ms"].fill_null(-1).to_numpy()
        ok = (idx >= 0) & (ts >= 0)
        self._rejected_idx = np.concatenate([self._rejected_idx, idx[ok]])
        self._rejected_ts = np.concatenate([self._rejected_ts, ts[ok].astype(np.int64)])

    def _rejected_span_ms(self) -> np.ndarray:
        """Per monitored sensor: the span its out-of-range readings are counted over (an hour, or its
        last ``SPIKE_REJECTED_READINGS`` usual reporting gaps when that is longer)."""
        return np.clip(SPIKE_REJECTED_READINGS * self.silence[:, sf.S_GAP], HOUR_MS, REJECTED_KEEP_MS)

    def _out_of_range(self, end: int) -> dict[int, tuple[int, float]]:
        """Monitored sensor index -> (out-of-range readings, span in ms) before ``end`` (older ones dropped)."""
        keep = self._rejected_ts > end - REJECTED_KEEP_MS
        self._rejected_idx, self._rejected_ts = self._rejected_idx[keep], self._rejected_ts[keep]
        span = self._rejected_span_ms()
        inside = (self._rejected_ts > end - span[self._rejected_idx]) & (self._rejected_ts <= end)
        recent = self._rejected_idx[inside]
        counts = np.bincount(recent, minlength=len(self.monitored)) if len(recent) else np.zeros(0, np.int64)
        return {int(k): (int(counts[k]), float(span[k])) for k in np.flatnonzero(counts >= SPIKE_REJECTED_MIN)}

    def __call__(self, batch: TickBatch) -> dict[str, pl.DataFrame]:
        rows: list[tuple] = []
        for end in batch.ends:
            frames = {fam.name: batch.tick_table("inputs", fam.table, end)
                      for fam in self.families.values() if fam.table in batch.inputs}
            # each frame's sensor rows, once for both uses (a dict lookup per row)
            rows_of = {name: self.families[name].rows_of(frame) for name, frame in frames.items() if frame.height}
            if FULL_SCALE_IS_SPIKE:
                for name, frame in frames.items():
                    fam = self.families[name]
                    pinned = [self.mon_index[fam.ids[k]] for k in fam.full_scale(frame, self._vmax[name], rows_of.get(name))]
                    if pinned:
                        self._rejected_idx = np.concatenate([self._rejected_idx, np.array(pinned, dtype=np.int64)])
                        self._rejected_ts = np.concatenate([self._rejected_ts, np.full(len(pinned), int(end), np.int64)])
            rejected = self._out_of_range(end)
            for k, (n, span) in rejected.items():
                s = self.monitored[k]
                lo, hi = self._range[s.id]
                rows.append(self._row(s, self.family_of[s.id], "spikes",
                                      f"{n} readings outside or at the top of its valid range [{lo:g}, {hi:g}] in the last "
                                      f"{'hour' if span <= HOUR_MS else f'{span / HOUR_MS:.1f} h'}", end))
            for fam in self.families.values():
                if fam.name not in frames:
                    continue
                frame = frames[fam.name]
                ref = self._probe_speed(batch, end) if fam.name == "traffic" else np.full(len(fam.ids), np.nan)
                flags, logp, events, dtot = fam.tick(frame, ref, end, rows_of.get(fam.name))
                fam.common_mode(flags, dtot)
                fam.dragged(flags, dtot)
                if fam.name in DRIFT_MIN_LOG_BY_FAMILY:
                    flags[np.abs(dtot) < DRIFT_MIN_LOG_BY_FAMILY[fam.name]] &= ~sf.FLAG_DRIFT
                for k in np.flatnonzero(flags):
                    if flags[k] & sf.FLAG_SPIKES and self.mon_index[fam.ids[k]] in rejected:
                        flags[k] &= ~sf.FLAG_SPIKES  # said once, below, with the range evidence
                    s = fam.sensors[k]
                    for bit, fault in sf.FAULT_NAMES.items():
                        if flags[k] & bit:
                            rows.append(self._row(s, fam.name, fault, _evidence(fault, logp[k], events[k], dtot[k]), end))
            rows.extend(self._dropouts(batch, end))
        out = pl.DataFrame(rows, schema=SCHEMA, orient="row") if rows else pl.DataFrame(schema=SCHEMA)
        return {"sensor_faults": out}

    def _probe_speed(self, batch: TickBatch, end: int) -> np.ndarray:
        """Each traffic detector's segment speed from probe travel times this tick (NaN: none)."""
        fam = self.families["traffic"]
        out = np.full(len(fam.ids), np.nan)
        if "probe" not in batch.inputs:
            return out
        probe = batch.tick_table("inputs", "probe", end)
        if probe.height == 0:
            return out
        tt = dict(zip(probe["segment_id"].to_list(), probe["travel_time_s"].to_list()))
        for k, s in enumerate(fam.sensors):
            t = tt.get(s.segment)
            if t and s.segment in self._seg_km:
                out[k] = self._seg_km[s.segment] / t * 3600.0
        return out

    def _dropouts(self, batch: TickBatch, end: int) -> list[tuple]:
        if "sensor_last_seen" in batch.inputs:
            seen = batch.tick_table("inputs", "sensor_last_seen", end)
            if seen.height:
                idx = self._seen_rows(seen["sensor_id"])
                col = seen["last_seen_ms"]
                ts = series.floats(col)
                ts = np.where(series.not_null(col, ts), ts, -1.0)
                ok = idx >= 0
                np.maximum.at(self.last_seen, idx[ok], ts[ok])
        flags, quiet = sf.silence_tick(self.last_seen, float(end), self.silence)
        return [self._row(self.monitored[k], self.family_of[self.monitored[k].id], "dropout",
                          f"no reading for {quiet[k] / 60_000:.0f} min (usually every "
                          f"{self.silence[k, sf.S_GAP] / 60_000:.0f} min)", end)
                for k in np.flatnonzero(flags)]

    @staticmethod
    def _row(s, family: str, fault: str, evidence: str, end: int) -> tuple:
        return (s.id, s.type, family, s.district, s.cell, s.segment, s.lon, s.lat, fault, 1.0, evidence, int(end))

    def snapshot(self) -> bytes:
        return checkpoint.encode({
            "families": {n: [np.ascontiguousarray(a) for a in f.state] for n, f in self.families.items()},
            "silence": self.silence, "last_seen": self.last_seen,
            "carried": {n: [f.last_val, f.last_ms] for n, f in self.families.items() if f.carry},
            "peer_states": {n: [np.ascontiguousarray(a) for a in f.peer_state] for n, f in self.families.items()
                            if f.peer_state is not None}})

    def restore(self, blob: bytes) -> None:
        state = checkpoint.decode(blob)
        if not isinstance(state, dict) or set(state.get("families", {})) != set(self.families):
            raise ValueError("sensor-fault operator snapshot has another format (or another city)")
        for name, arrays in state["families"].items():
            fam = self.families[name]
            if [a.shape for a in arrays] != [a.shape for a in fam.state]:
                raise ValueError(f"sensor-fault operator snapshot: family {name} has another shape (another city?)")
            fam.state = tuple(np.array(a) for a in arrays)
        self.silence, self.last_seen = np.array(state["silence"]), np.array(state["last_seen"])
        for name, arrays in state.get("peer_states", {}).items():  # none in a snapshot from before: relearned
            fam = self.families.get(name)
            if fam is not None and fam.peer_state is not None and [a.shape for a in arrays] == [a.shape for a in fam.peer_state]:
                fam.peer_state = tuple(np.array(a) for a in arrays)
        for name, (val, ms) in state.get("carried", {}).items():  # a snapshot from before has none: refilled within minutes
            if name in self.families and len(val) == len(self.families[name].ids):
                self.families[name].last_val, self.families[name].last_ms = np.array(val), np.array(ms)


def _evidence(fault: str, logp: float, events: int, dtot: float) -> str:
    if fault == "stuck":
        return f"every field repeats its previous window exactly (chance for this type ~1e{logp / np.log(10):.0f})"
    if fault == "spikes":
        return f"{events} jumps away from both neighbours in the last {sf.SPIKE_WINDOW} readings"
    return f"{'up' if dtot > 0 else 'down'} {abs(np.expm1(dtot)):.0%} against its peers, gradually"


def fault_operator(city):
    """The sensor-fault operator for ``citybrain run`` (kernels compiled here, at start)."""
    sf.warm_up()
    return FaultOperator(city)
