"""The loop over real HTTP: emulated controllers fetch, verify, acknowledge and report against the
aiohttp endpoint on a real socket; one silent controller alerts; a wrong key is refused; the CLI
says what is missing instead of a traceback."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import numpy as np
from aiohttp.test_utils import TestServer

from brain.greenwave.optimizer import optimize_corridor
from streams.controllers.emulator import EmulatedController, run_http
from streams.controllers.http import make_app
from streams.controllers.hub import ControllerHub
from streams.controllers.protocol import controller_key
from tests.greenwave.helpers import random_spec

MASTER = b"test-master-secret-0123456789"


def test_emulated_controllers_close_the_loop(redis_client):
    spec = random_spec(np.random.default_rng(8), 4)
    ids = [it.id for it in spec.intersections]
    clock = {"now": 1_000_000}
    hub = ControllerHub(redis_client, MASTER, ack_within_ms=5_000, known=set(ids))
    plan = optimize_corridor(spec, valid_from_ms=clock["now"])
    hub.push(plan, clock["now"])
    ctls = [EmulatedController(i, controller_key(MASTER, i)) for i in ids[:3]]      # the last one is silent
    forger = EmulatedController(ids[3], controller_key(b"not-the-centre-secret-000", ids[3]))
    rounds = []

    async def main():
        server = TestServer(make_app(hub, clock=lambda: clock["now"]))
        await server.start_server()
        try:
            url = str(server.make_url("")).rstrip("/")
            for _ in range(3):
                await run_http(url, ctls + [forger], rounds=1, on_round=rounds.append, clock=lambda: clock["now"])
                clock["now"] += 4_000
        finally:
            await server.close()

    asyncio.run(main())
    first = {r["intersection"]: r for r in rounds[0]}
    for i in ids[:3]:
        assert first[i]["ack"].startswith(f"accepted {plan.plan_id}") and first[i]["ack"].endswith("200")
        assert first[i]["status"].endswith("202")
    assert first[ids[3]]["fetch"].startswith("401") and first[ids[3]]["status"].endswith("401")
    assert all("ack" not in r for r in rounds[1])                  # acknowledged once, then only status
    for c in ctls:
        assert c.running is not None and c.running.plan_id == plan.plan_id
        st = hub.last_status(c.id)
        assert st["plan_id"] == plan.plan_id and st["kind"] == "signal_status"
    alerts = hub.candidates(clock["now"])
    assert [(a.rule_id, a.labels["intersection"]) for a in alerts] == [("controller_plan_unacknowledged", ids[3])]


def test_cli_without_a_secret_says_so():
    env = {k: v for k, v in os.environ.items() if k != "CITYBRAIN_CONTROLLER_SECRET"}
    res = subprocess.run([sys.executable, "-m", "citybrain", "controller", "emulate", "--url", "http://127.0.0.1:9",
                          "--corridor", "nope"], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode != 0 and "master secret" in res.stderr and "Traceback" not in res.stderr
