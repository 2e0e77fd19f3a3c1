"""一键护航 started from the cockpit page of a real ``citybrain run``, following the vehicle: the escort form with
"follow" ticked, a simulated ambulance reporting its positions to ``POST /api/v1/vehicles/positions`` as it
drives (the simulator's vehicle model, 2× real time), the engine's controller hub re-timing each signal
ahead from them and releasing each one passed, emulated controllers fetching and applying the signed
requests over HTTP, and the page's per-signal table updating by itself (headless Chromium, no reload).
A real engine process, real Redis, real sockets, a real browser."""
import asyncio
import threading
import time

import aiohttp
import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from streams.controllers.priority import PriorityHandler, poll_priority_once
from streams.controllers.protocol import controller_key
from tests.dashboards.test_browser import ARTIFACTS, browser, login, wait  # noqa: F401  (fixture)
from tests.dashboards.test_controller_hub import engine, wait_for  # noqa: F401  (fixture)

ROUTE = ["JF02", "JF03", "JF04", "JF05", "JF06"]
SPEEDUP = 2.0  # positions come 2x faster than the vehicle's own clock (their ts_ms stay the vehicle's)


def _controllers(engine, stop):
    """jiefang's controllers poll their priority request like real ones: fetch, verify, apply, report."""
    handlers = [PriorityHandler(i, controller_key(engine["master"], i)) for i in ROUTE]

    async def go():
        async with aiohttp.ClientSession() as s:
            while not stop.is_set():
                for h in handlers:
                    await poll_priority_once(s, engine["controllers"], h, int(time.time() * 1000))
                await asyncio.sleep(0.3)
    asyncio.run(go())
    return handlers


def _vehicle(api, vehicle_id, stop, sent):
    """The ambulance's AVL unit: one position every 2 s of its own clock, posted as it drives."""
    from brain.city import demo_city_path, load_city
    from brain.greenwave.escort import plan_route
    from streams.sim.vehicles import VehicleRun

    city = load_city(demo_city_path())
    t0 = int(time.time() * 1000)
    run = VehicleRun(vehicle_id, "ambulance", plan_route(city, ROUTE[0], ROUTE[-1]), t0 - 120_000, 60.0)
    p = run.positions(run.depart_ms, run.arrive_ms, seed=11)
    recs = [{"kind": "vehicle_position", "sensor_id": f"AVL-{vehicle_id}", "vehicle_id": vehicle_id,
             "vehicle_type": "ambulance", **{f: p[f][k].item() for f in ("ts_ms", "lon", "lat", "speed_kmh", "heading_deg")}}
            for k in range(len(p["ts_ms"]))]
    lon, lat = run.route.point_at(run.route.length_m)
    recs.append({**recs[-1], "ts_ms": recs[-1]["ts_ms"] + 2000, "lon": lon, "lat": lat, "speed_kmh": 0.0})
    for rec in recs:
        if stop.is_set():
            return
        # its clock runs 2 min behind the server's (a position more than 60 s ahead of it would be refused)
        due = t0 + (rec["ts_ms"] - run.depart_ms) / SPEEDUP
        time.sleep(max(0.0, (due - time.time() * 1000) / 1000))
        r = api.post("/api/v1/vehicles/positions", json=rec)
        assert r.status_code == 202, r.text
        sent.append(rec)


def test_page_started_escort_follows_the_vehicle_through_a_running_engine(engine, browser):  # noqa: F811
    d, url = browser, engine["api"]
    api = httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {engine['token']}"})
    wait_for(lambda: (r := api.get("/api/v1/plans/controllers").json()["rows"]) and all(
        x["plan_id"] for x in r if x["corridor"] == "jiefang") and r, 240, "plans pushed to the controllers")
    stop = threading.Event()
    ctl = threading.Thread(target=_controllers, args=(engine, stop), daemon=True)
    ctl.start()
    try:
        login(d, url, engine["token"])
        d.get(f"{url}/#traffic")
        wait(d, lambda: d.find_element(By.ID, "escort-form").is_displayed())
        wait(d, lambda: len(d.find_elements(By.CSS_SELECTOR, "#esc-origin option")) > 0)
        Select(d.find_element(By.ID, "esc-origin")).select_by_visible_text(ROUTE[0])
        Select(d.find_element(By.ID, "esc-destination")).select_by_visible_text(ROUTE[-1])
        d.find_element(By.ID, "esc-vehicle").send_keys("AMB-RUN")
        d.find_element(By.ID, "esc-follow").click()
        d.find_element(By.ID, "esc-send").click()
        wait(d, lambda: d.find_elements(By.CSS_SELECTOR, "#escort-result [data-escort]"))
        eid = d.execute_script("return document.querySelector('#escort-result [data-escort]').dataset.escort")
        rows_js = ("return [...document.querySelectorAll('#escort-signals tbody tr')]"
                   ".map((tr) => [tr.dataset.signal, tr.dataset.state, tr.dataset.eta, Number(tr.dataset.requests)]);")
        status_js = "return (document.querySelector('#escort-result [data-vehicle-status]') || {dataset: {}}).dataset.vehicleStatus"
        wait(d, lambda: d.execute_script(status_js) == "waiting")
        assert {x[1] for x in d.execute_script(rows_js)} == {"waiting"}  # nothing asked before a position

        sent: list = []
        veh = threading.Thread(target=_vehicle, args=(api, "AMB-RUN", stop, sent), daemon=True)
        veh.start()
        # watch the page (never reloaded) while the vehicle drives: what each signal showed, and when
        seen: dict[str, list] = {i: [] for i in ROUTE}
        released_while_following = set()
        end = time.monotonic() + 240
        while time.monotonic() < end:
            status = d.execute_script(status_js)
            for sig, state, eta, n in d.execute_script(rows_js):
                if not seen[sig] or seen[sig][-1] != (state, eta, n):
                    seen[sig].append((state, eta, n))
                if state == "released" and status == "following":
                    released_while_following.add(sig)
            if status in ("arrived", "cancelled", "lost"):
                break
            time.sleep(0.25)
        assert d.execute_script(status_js) == "arrived", (d.execute_script(status_js), seen, len(sent))
        d.save_screenshot(str(ARTIFACTS / "traffic-escort-follow.png"))
        veh.join(30)
        final = {x[0]: x for x in d.execute_script(rows_js)}
        assert {final[i][1] for i in ROUTE} == {"released"}, final
        # the table changed by itself as the vehicle went: each signal asked for, then released, in route order
        for i in ROUTE:
            states = [s for s, _, _ in seen[i]]
            assert states[0] == "waiting" and states[-1] == "released", (i, seen[i])
            # asked for on the way (the origin: the vehicle starts in its box, where nothing is asked; passed
            # 20 m later, it is given back at once)
            if i != ROUTE[0]:
                assert final[i][3] >= 1, (i, seen[i])
                assert any(s in ("requested", "re-timed", "not needed") for s in states), (i, seen[i])
        # signals given back while the vehicle still drove (not all at the end), the first before the last
        assert ROUTE[0] in released_while_following and ROUTE[-1] not in released_while_following, released_while_following
        # re-timed from positions: a predicted arrival moved in the page for some signal
        moved = [i for i in ROUTE if len({eta for s, eta, _ in seen[i] if s in ("requested", "re-timed")}) > 1]
        assert moved, seen
        # the page shows what the API shows, and the controllers applied the hub's signed requests
        view = api.get(f"/api/v1/plans/escort/{eid}").json()
        assert [(s["intersection"], s["state"]) for s in view["signals"]] == [(x[0], x[1]) for x in d.execute_script(rows_js)]
        wait_for(lambda: all(any(c["status"] == "released" for c in s["controller"])
                             for s in api.get(f"/api/v1/plans/escort/{eid}").json()["signals"]), 20,
                 "every controller's release report")
        view = api.get(f"/api/v1/plans/escort/{eid}").json()
        applied = [s["intersection"] for s in view["signals"] if any(c["status"] == "applied" for c in s["controller"])]
        assert applied, view["signals"]
        audit = api.get("/api/v1/audit?limit=5000").json()["rows"]
        assert any("escort-requested" in str(e) and eid in str(e) for e in audit)
    finally:
        stop.set()
        ctl.join(10)
