"""``citybrain run`` starts the controller hub: the engine's green-wave plans reach emulated controllers
over HTTP, a corridor whose controllers never answer raises ``controller_plan_unacknowledged`` alerts
through the real alert pipeline (and the answering corridor does not), and a priority request
(一键护航) made through API v1 is consumed by the hub, fetched and applied by the controller and
shown with the controller's report. A real engine process, real Redis, real sockets."""
import asyncio
import os
import re
import subprocess
import threading
import time

import aiohttp
import httpx
import pytest

from streams.controllers.emulator import EmulatedController, poll_once
from streams.controllers.priority import PriorityHandler, poll_priority_once
from streams.controllers.protocol import controller_key
from tests.dashboards.processes import CITYBRAIN, wait_for


@pytest.fixture
def engine(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("CITYBRAIN_REDIS_URL", "CITYBRAIN_CONTROLLER_SECRET")}
    log = tmp_path / "run.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([CITYBRAIN, "run", "--headless", "--fresh", "--speed", "120", "--duration", "6h",
                                 "--out", str(tmp_path / "out"), "--http-port", "0", "--controller-port", "0",
                                 "--controller-ack-within", "3"], stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        text = wait_for(lambda: (t := log.read_text()) and "first admin token" in t and "signal controllers at" in t and t,
                        300, "the engine's start lines")
        yield {"api": re.search(r"cockpit and API v1 at (http://127\.0\.0\.1:\d+)/", text).group(1),
               "token": re.search(r"first admin token.*(cbt_\S+)", text).group(1),
               "controllers": re.search(r"signal controllers at (http://127\.0\.0\.1:\d+)/controllers/", text).group(1),
               "master": (tmp_path / "out" / "controllers" / "master.key").read_bytes().strip(), "log": log}
    finally:
        proc.terminate()
        proc.wait(60)


def test_plans_acks_alerts_and_priority_through_the_running_hub(engine):
    from brain.city import demo_city_path, load_city

    city = load_city(demo_city_path())
    corridors = {c.id: c.intersections for c in city.corridors}
    answering, silent = "jiefang", "qiutao"
    api = httpx.Client(base_url=engine["api"], timeout=30, headers={"Authorization": f"Bearer {engine['token']}"})
    # the green-wave operator's plans reach the hub, one signed message per controller
    rows = wait_for(lambda: (r := api.get("/api/v1/plans/controllers").json()["rows"]) and all(
        x["plan_id"] for x in r if x["corridor"] in (answering, silent)) and r, 240, "plans pushed to the controllers")
    ctls = [EmulatedController(i, controller_key(engine["master"], i)) for i in corridors[answering]]
    stop = threading.Event()

    def controllers_loop():  # jiefang's controllers poll like real ones: fetch, verify, ack, report
        async def go():
            async with aiohttp.ClientSession() as s:
                while not stop.is_set():
                    now = int(time.time() * 1000)
                    for c in ctls:
                        await poll_once(s, engine["controllers"], c, now)
                    await asyncio.sleep(0.5)
        asyncio.run(go())

    t = threading.Thread(target=controllers_loop, daemon=True)
    t.start()
    try:
        def state():
            rows = api.get("/api/v1/plans/controllers").json()["rows"]
            return {x["intersection"]: x for x in rows}

        ok = wait_for(lambda: (s := state()) and all(s[i]["acknowledged"] and s[i]["running_plan_id"]
                                                      for i in corridors[answering]) and s, 60, "jiefang acknowledged")
        assert all(not ok[i]["acknowledged"] for i in corridors[silent])
        # qiutao never answered: an alert per controller through the engine's rules and alert pipeline
        def alerts():
            a = api.get("/api/v1/alerts", params={"rule": "controller_plan_unacknowledged", "limit": 1000}).json()
            return {x["labels"]["intersection"] for x in a["rows"] if x["status"] in ("firing", "pending")}

        unacked = wait_for(lambda: (a := alerts()) >= set(corridors[silent]) and a, 120, "unacknowledged-plan alerts")
        assert not unacked & set(corridors[answering]), unacked
        one = api.get("/api/v1/alerts", params={"rule": "controller_plan_unacknowledged"}).json()["rows"][0]
        assert one["labels"]["category"] == "traffic" and one["labels"]["corridor"] == silent

        # 一键护航 through the API: the hub turns it into a signed green window the controller applies
        handler = PriorityHandler("JF03", controller_key(engine["master"], "JF03"))
        sent = None
        for eta in (10, 25, 40, 55, 70, 85):
            made = api.post("/api/v1/plans/jiefang/priority",
                            json={"intersection": "JF03", "eta_s": eta, "vehicle_id": f"AMB-{eta}", "direction": "out"})
            assert made.status_code == 202, made.text
            row = wait_for(lambda: next((r for r in api.get("/api/v1/plans/priority").json()["rows"]
                                         if r["id"] == made.json()["id"] and r["hub"]["status"] != "queued"), None),
                           30, "the hub to consume the request")
            assert row["hub"]["status"] in ("sent", "not needed"), row
            if row["hub"]["status"] == "sent":
                sent = row
                break
        assert sent is not None, "one of six arrival times within a cycle needs a change of the plan"

        async def fetch():
            async with aiohttp.ClientSession() as s:
                return await poll_priority_once(s, engine["controllers"], handler, int(time.time() * 1000))

        assert asyncio.run(fetch()).startswith("applied ")
        shown = wait_for(lambda: next((r for r in api.get("/api/v1/plans/priority").json()["rows"]
                                       if r["id"] == sent["id"] and r["controller"]), None), 30, "the controller's report")
        assert shown["controller"][0]["status"] == "applied"
        assert shown["controller"][0]["held_to_ms"] == sent["hub"]["hold_to_ms"]
        assert shown["vehicle_id"] == sent["vehicle_id"] and shown["requested_by"].startswith("first-admin (admin ")

        # 一键护航 along a route across both corridors: one request per planned signal through the same hub;
        # every controller the hub sent a window to applies it and the escort's view shows each signal's state
        made = api.post("/api/v1/plans/escort", json={"origin": "JF02", "destination": "QT05", "via": ["X01"],
                                                      "vehicle_id": "AMB-ESC", "speed_kmh": 40, "start_in_s": 15})
        assert made.status_code == 202, made.text
        esc = made.json()
        planned = [q["intersection"] for q in esc["requests"]]
        assert {q["corridor"] for q in esc["requests"]} == {"jiefang", "qiutao"} and esc["unplanned"] == ["X01"]
        view = lambda: api.get(f"/api/v1/plans/escort/{esc['escort_id']}").json()["signals"]  # noqa: E731
        done = wait_for(lambda: (v := view()) and all(x["state"] != "queued" for x in v) and v, 30,
                        "the hub to consume the escort's requests")
        assert [x["intersection"] for x in done] == esc["route"]
        states = {x["intersection"]: x["state"] for x in done}
        assert states["X01"] == "unplanned" and {states[i] for i in planned} <= {"sent", "not needed", "denied"}
        to_apply = [i for i in planned if states[i] == "sent"]
        assert to_apply, states  # an escort at 40 km/h over ~10 signals needs at least one change of the plan

        async def fetch_all():
            async with aiohttp.ClientSession() as s:
                return [await poll_priority_once(s, engine["controllers"], PriorityHandler(i, controller_key(engine["master"], i)),
                                                 int(time.time() * 1000)) for i in to_apply]

        assert all(x.startswith("applied ") for x in asyncio.run(fetch_all()))
        done = wait_for(lambda: (v := view()) and all(x["state"] == "applied" for x in v if x["intersection"] in to_apply) and v,
                        30, "the controllers' reports in the escort's view")
        for x in done:
            if x["intersection"] in to_apply:
                assert x["controller"][0]["held_to_ms"] == x["hub"]["hold_to_ms"]
    finally:
        stop.set()
        t.join(10)
