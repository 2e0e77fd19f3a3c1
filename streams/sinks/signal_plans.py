"""Where timing plans go: controllers' plan feed (NTCIP 1202-style JSON) and the latest-plan query.

Every sink has the same small interface:

* ``publish(plan) -> bool`` — write the plan (rendered with :func:`brain.greenwave.plan.to_ntcip`:
  plan id, valid-from, per-controller pattern / split table / offset). Publishing the plan id
  that is already the corridor's latest is a no-op returning ``False`` (delivery is
  at-least-once upstream, so repeats must be harmless).
* ``latest(corridor) -> dict | None`` — the newest plan document for a corridor.
* ``history(corridor, count) -> list[dict]`` — newest first.
* ``close()``.

Sinks: :class:`FilePlanSink` (one JSON-lines log and one ``latest`` file per corridor) and
:class:`RedisStreamPlanSink` (a Redis stream per corridor that controllers' gateways read with
``XREAD``/consumer groups, plus a hash of latest plans). A Kafka topic sink for the Faust driver
will implement the same interface.

Example:
    >>> import tempfile
    >>> from brain.greenwave import CorridorSpec, optimize_corridor
    >>> from pathlib import Path
    >>> import brain.greenwave as gw
    >>> spec = CorridorSpec.from_json((Path(gw.__file__).parent / "example_corridor.json").read_bytes())
    >>> plan = optimize_corridor(spec, valid_from_ms=1_700_000_000_000)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     sink = FilePlanSink(d)
    ...     first, again = sink.publish(plan), sink.publish(plan)
    ...     doc = sink.latest("example")
    >>> first, again, doc["plan_id"] == plan.plan_id, doc["valid_from"]
    (True, False, True, '2023-11-14T22:13:20.000Z')
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from brain.greenwave.plan import Plan, to_ntcip

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class PlanSink(Protocol):
    def publish(self, plan: Plan) -> bool: ...

    def latest(self, corridor: str) -> dict | None: ...

    def history(self, corridor: str, count: int = 10) -> list[dict]: ...

    def close(self) -> None: ...


def _name(corridor: str) -> str:
    if not corridor:
        raise ValueError("corridor id must not be empty")
    return _SAFE.sub("_", corridor)


class FilePlanSink:
    """Plans as files in ``directory``: ``<corridor>.plans.jsonl`` (append-only log) and
    ``<corridor>.latest.json`` (replaced atomically, so a reader never sees half a plan)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"cannot create plan directory {self.directory}: {exc.strerror}") from None

    def _paths(self, corridor: str) -> tuple[Path, Path]:
        n = _name(corridor)
        return self.directory / f"{n}.plans.jsonl", self.directory / f"{n}.latest.json"

    def publish(self, plan: Plan) -> bool:
        log, latest = self._paths(plan.corridor)
        current = self.latest(plan.corridor)
        if current is not None and current.get("plan_id") == plan.plan_id:
            return False
        doc = to_ntcip(plan)
        line = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
        with open(log, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".plan-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(line)
        os.replace(tmp, latest)
        return True

    def latest(self, corridor: str) -> dict | None:
        _, latest = self._paths(corridor)
        try:
            return json.loads(latest.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def history(self, corridor: str, count: int = 10) -> list[dict]:
        log, _ = self._paths(corridor)
        try:
            lines = log.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(x) for x in reversed(lines[-count:]) if x.strip()]

    def close(self) -> None:
        pass


class RedisStreamPlanSink:
    """Plans in Redis: stream ``<prefix>:<corridor>`` (fields ``plan_id``, ``valid_from_ms``,
    ``plan`` = NTCIP JSON; trimmed to about ``maxlen`` entries) and hash ``<prefix>:latest``
    (corridor -> NTCIP JSON). ``client`` is a ``redis.Redis`` (or pass ``url``)."""

    def __init__(self, client=None, *, url: str | None = None, prefix: str = "citybrain:signal_plans", maxlen: int = 10_000):
        if (client is None) == (url is None):
            raise ValueError("give exactly one of client or url")
        if maxlen < 1:
            raise ValueError(f"maxlen must be >= 1, got {maxlen}")
        if client is None:
            import redis

            client = redis.Redis.from_url(url)
        self.r = client
        self.prefix = prefix
        self.maxlen = maxlen
        # compare-and-publish in one step so two engines cannot both append the same plan
        self._publish = self.r.register_script(
            """
            local cur = redis.call('HGET', KEYS[2], ARGV[1])
            if cur then
              local ok, doc = pcall(cjson.decode, cur)
              if ok and doc['plan_id'] == ARGV[2] then return 0 end
            end
            redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], '*', 'plan_id', ARGV[2], 'valid_from_ms', ARGV[3], 'plan', ARGV[4])
            redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
            return 1
            """
        )

    def stream_key(self, corridor: str) -> str:
        return f"{self.prefix}:{_name(corridor)}"

    @property
    def latest_key(self) -> str:
        return f"{self.prefix}:latest"

    def publish(self, plan: Plan) -> bool:
        doc = json.dumps(to_ntcip(plan), ensure_ascii=False, separators=(",", ":"))
        valid = "" if plan.valid_from_ms is None else str(plan.valid_from_ms)
        return bool(self._publish(keys=[self.stream_key(plan.corridor), self.latest_key],
                                  args=[plan.corridor, plan.plan_id, valid, doc, self.maxlen]))

    def latest(self, corridor: str) -> dict | None:
        raw = self.r.hget(self.latest_key, corridor)
        return None if raw is None else json.loads(raw)

    def history(self, corridor: str, count: int = 10) -> list[dict]:
        entries = self.r.xrevrange(self.stream_key(corridor), count=count)
        return [json.loads(fields[b"plan"]) for _, fields in entries]

    def close(self) -> None:
        self.r.close()
