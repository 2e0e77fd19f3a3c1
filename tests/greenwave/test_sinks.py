"""Plan sinks against a real Redis server and the file system."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import redis

from brain.greenwave.optimizer import optimize_corridor
from streams.sinks.signal_plans import FilePlanSink, RedisStreamPlanSink
from tests.greenwave.helpers import random_spec


def plans(count: int):
    rng = np.random.default_rng(4)
    spec = random_spec(rng, 4)
    out = []
    for k in range(count):
        for it in spec.intersections:
            for p in it.phases:
                p.flow_vph = float(rng.uniform(100, 700))
        out.append(optimize_corridor(spec, valid_from_ms=1_800_000_000_000 + k * 900_000))
    return out


@pytest.fixture(params=["file", "redis"])
def sink(request, tmp_path, redis_client):
    if request.param == "file":
        yield FilePlanSink(tmp_path / "plans")
    else:
        yield RedisStreamPlanSink(redis_client)


def test_publish_latest_history(sink):
    p1, p2, p3 = plans(3)
    assert sink.latest(p1.corridor) is None
    assert sink.publish(p1) and sink.publish(p2)
    assert sink.publish(p2) is False  # a repeat is harmless
    assert sink.publish(p3)
    latest = sink.latest(p1.corridor)
    assert latest["plan_id"] == p3.plan_id
    assert latest["valid_from_ms"] == p3.valid_from_ms
    assert [h["plan_id"] for h in sink.history(p1.corridor, 10)] == [p3.plan_id, p2.plan_id, p1.plan_id]
    ctl = latest["controllers"][2]
    assert ctl["pattern"]["offset_time"] == pytest.approx(p3.intersections[2].offset_s, abs=1e-3)
    assert ctl["pattern"]["cycle_time"] == p3.cycle_s
    assert sink.latest("other-corridor") is None


def test_redis_stream_readable_by_a_controller_gateway(redis_client, redis_socket):
    sink = RedisStreamPlanSink(url=f"unix://{redis_socket}")
    p1, p2 = plans(2)
    sink.publish(p1)
    # an independent reader (a controller gateway) blocks on the stream and gets the next plan
    reader = redis.Redis(unix_socket_path=redis_socket)
    last_id = reader.xrevrange(sink.stream_key(p1.corridor), count=1)[0][0]
    got = {}

    def read():
        got["r"] = reader.xread({sink.stream_key(p1.corridor): last_id}, block=5000, count=1)

    t = threading.Thread(target=read)
    t.start()
    sink.publish(p2)
    t.join(6)
    (_, entries), = got["r"]
    fields = entries[0][1]
    assert fields[b"plan_id"].decode() == p2.plan_id
    assert json.loads(fields[b"plan"])["controllers"][0]["intersection"] == p2.intersections[0].id
    reader.close()
    sink.close()


def test_bad_sink_arguments(tmp_path, redis_client):
    with pytest.raises(ValueError, match="exactly one"):
        RedisStreamPlanSink()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot create plan directory"):
        FilePlanSink(blocker / "sub")
