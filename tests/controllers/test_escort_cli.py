"""``citybrain controller escort``: the 一键护航 demo end to end from the command line."""
from __future__ import annotations

import json
import os
import subprocess
import sys


def _run(*args, secret="some-master-secret-of-16+bytes"):
    env = {**os.environ, "CITYBRAIN_CONTROLLER_SECRET": secret}
    return subprocess.run([sys.executable, "-m", "citybrain", "controller", "escort", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_escort_demo_prints_requests_controller_answers_and_summary():
    res = _run()
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("route JF02 > ") and "jiefang JF02..JF10 out; qiutao QT01..QT05 out" in lines[0]
    summary = json.loads(lines[-1])
    assert summary["released"] == summary["escorted"] == 14 and summary["refused"] == 0
    assert summary["red_wait_escorted_s"] < summary["red_wait_plan_s"]
    assert 0 < summary["cross_street_max_per_signal_s"] <= 30.0
    assert any("controller QT03  applied" in ln for ln in lines)


def test_escort_bad_requests_are_messages_not_tracebacks():
    res = _run("--to", "NOPE")
    assert res.returncode != 0 and "unknown intersection 'NOPE'" in res.stderr and "Traceback" not in res.stderr
    res = _run(secret="short")
    assert res.returncode != 0 and "master secret" in res.stderr and "Traceback" not in res.stderr


def test_priority_requests_over_http(redis_client):
    """Controllers fetch their signed priority request over a real socket, answer, and the log has it."""
    import asyncio

    import aiohttp
    from aiohttp.test_utils import TestServer

    from brain.greenwave.priority import PriorityRequest
    from streams.controllers.http import make_app
    from streams.controllers.hub import ControllerHub
    from streams.controllers.priority import PriorityDispatch, PriorityHandler, poll_priority_once
    from streams.controllers.protocol import controller_key

    master = b"test-master-secret-0123456789"
    now = 1_800_000_000_000
    hub = ControllerHub(redis_client, master)
    disp = PriorityDispatch(hub)
    greens = [[2, 1_800_000_000.0, 1_800_000_034.0], [4, 1_800_000_039.0, 1_800_000_055.0]]
    disp.send(PriorityRequest(request_id="AMB-1-J1-1", kind="emergency", vehicle_id="AMB-1", intersection="J1", phase=2,
                              action="extend", issued_s=now / 1000, eta_s=now / 1000 + 30, hold_from_s=now / 1000 + 24,
                              hold_to_s=now / 1000 + 34, cross_delay_s=4.0, phase_greens=greens), now)
    ok = PriorityHandler("J1", controller_key(master, "J1"))
    forger = PriorityHandler("J1", controller_key(b"not-the-centre-secret-000", "J1"))
    idle = PriorityHandler("J2", controller_key(master, "J2"))
    out = []

    async def main():
        server = TestServer(make_app(hub, clock=lambda: now))
        await server.start_server()
        try:
            url = str(server.make_url("")).rstrip("/")
            async with aiohttp.ClientSession() as s:
                for h in (ok, ok, forger, idle):
                    out.append(await poll_priority_once(s, url, h, now))
        finally:
            await server.close()

    asyncio.run(main())
    assert out[0] == "applied AMB-1-J1-1 -> 202" and out[1] == "no new request"
    assert out[2].startswith("fetch 401") and out[3].startswith("fetch 404")
    assert ok.held is not None and ok.held.hold_to_ms == now + 34_000
    assert [(e["event"], e.get("status")) for e in disp.log()] == [("request", None), ("controller", "applied")]
