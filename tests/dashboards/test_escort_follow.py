"""一键护航 from the API that follows the vehicle: ``POST /api/v1/plans/escort`` with ``follow``, its positions
through ``POST /api/v1/vehicles/positions``, the real controller hub's follower re-timing each signal ahead
and releasing each one passed, controllers (in-process handlers with their own keys) answering the signed
requests; ``GET /escort/{id}`` showing it, cancel, refusals naming the field. Real HTTP (uvicorn), real Redis."""
import time

import httpx
import pytest
import redis

MASTER = b"0123456789abcdef-master-follow"


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def centre(demo_run, cockpit_redis):
    from streams.controllers.centre import ControllerCentre

    r = redis.Redis.from_url(cockpit_redis)
    yield ControllerCentre(demo_run[0], r, MASTER)
    r.close()


def _h(tokens, who):
    return {"Authorization": f"Bearer {tokens[who]}"}


def _positions(city, origin, destination, via, vehicle_id, speed_kmh, seed, depart_ms):
    from brain.greenwave.escort import plan_route
    from streams.sim.vehicles import VehicleRun

    run = VehicleRun(vehicle_id, "ambulance", plan_route(city, origin, destination, via), depart_ms, speed_kmh)
    p = run.positions(depart_ms, run.arrive_ms, seed)
    recs = [{"kind": "vehicle_position", "sensor_id": f"AVL-{vehicle_id}", "vehicle_id": vehicle_id,
             "vehicle_type": "ambulance", **{f: p[f][k].item() for f in ("ts_ms", "lon", "lat", "speed_kmh", "heading_deg")}}
            for k in range(len(p["ts_ms"]))]
    lon, lat = run.route.point_at(run.route.length_m)  # the last report, at the destination
    recs.append({**recs[-1], "ts_ms": recs[-1]["ts_ms"] + 2000, "lon": lon, "lat": lat, "speed_kmh": 0.0})
    return run, recs


def _answer(centre, handlers, seen):
    """Each controller fetches its current request (as over HTTP) and reports what it did, signed."""
    from streams.controllers.priority import PriorityHandler

    for iid in centre.hub.known:
        msg = centre.dispatch.current(iid)
        if msg is None or seen.get(iid) == msg.seq:
            continue
        seen[iid] = msg.seq
        h = handlers.setdefault(iid, PriorityHandler(iid, centre.hub.key(iid)))
        rep = h.receive(msg, msg.issued_ms + 300)
        if rep is not None:
            centre.dispatch.report(rep)


def test_followed_escort_is_retimed_from_positions_and_releases_each_signal(client, tokens, demo_run, centre):
    city, _ = demo_run
    r = client.post("/api/v1/plans/escort", headers=_h(tokens, "admin"),
                    json={"origin": "JF02", "destination": "QT05", "via": ["X01"], "vehicle_id": "AMB-F1",
                          "incident_id": "INC-F1", "follow": True})
    assert r.status_code == 202, r.text
    esc = r.json()
    eid = esc["escort_id"]
    assert esc["follow"] is True
    planned = [s for leg in esc["legs"] for s in leg["signals"]]
    view = client.get(f"/api/v1/plans/escort/{eid}", headers=_h(tokens, "viewer")).json()
    assert [s["intersection"] for s in view["signals"]] == esc["route"]
    assert {s["state"] for s in view["signals"] if s["intersection"] in planned} == {"waiting"}  # nothing asked yet
    assert next(s for s in view["signals"] if s["intersection"] == "X01")["state"] == "unplanned"
    # nothing was queued as a one-off prediction
    rows = client.get("/api/v1/plans/priority?limit=500", headers=_h(tokens, "viewer")).json()["rows"]
    assert not [x for x in rows if x.get("escort_id") == eid]

    # the vehicle drives (positions in the past: the follower's clock is the positions' own ts_ms)
    run, recs = _positions(city, "JF02", "QT05", ["X01"], "AMB-F1", 50.0, seed=3,
                           depart_ms=int(time.time() * 1000) - 1_800_000)
    s_at = dict(zip(run.route.signals, run.route.signal_s_m.tolist()))
    handlers, seen, first_eta, released_while_ahead = {}, {}, {}, set()
    for k in range(0, len(recs), 10):
        ok = client.post("/api/v1/vehicles/positions", headers=_h(tokens, "controller"), json=recs[k:k + 10])
        assert ok.status_code == 202 and ok.json() == {"accepted": len(recs[k:k + 10])}, ok.text
        centre.follow.poll()
        _answer(centre, handlers, seen)
        view = client.get(f"/api/v1/plans/escort/{eid}", headers=_h(tokens, "viewer")).json()
        if view["vehicle"]["status"] == "following":
            s_now = view["vehicle"]["s_m"]
            for sig in view["signals"]:
                if sig["state"] not in ("unplanned", "waiting"):
                    first_eta.setdefault(sig["intersection"], sig["eta_ms"])
                if sig["state"] == "released":
                    # released only once the vehicle is past it
                    assert s_now > s_at[sig["intersection"]], (sig, s_now)
                    released_while_ahead.add(sig["intersection"])
                elif sig["state"] in ("requested", "re-timed"):
                    assert s_at[sig["intersection"]] >= s_now - 20.0  # held only ahead of (or at) the vehicle
    view = client.get(f"/api/v1/plans/escort/{eid}", headers=_h(tokens, "viewer")).json()
    assert view["vehicle"]["status"] == "arrived", view["vehicle"]
    by = {s["intersection"]: s for s in view["signals"]}
    assert {by[i]["state"] for i in planned} == {"released"}, {i: by[i]["state"] for i in planned}
    assert set(first_eta) == set(planned)  # every planned signal was asked for on the way
    assert released_while_ahead  # signals were given back while the escort still ran, not all at the end
    # re-timed from the positions: some signal asked more than once, with its arrival moved
    retimed = [i for i in planned if by[i]["hub"]["requests"] > 1]
    assert retimed, {i: by[i]["hub"] for i in planned}
    # the controllers' own signed reports: each signal held, then released
    for i in planned:
        statuses = [c["status"] for c in by[i]["controller"]]
        assert statuses and statuses[-1] == "released", (i, by[i])
    assert any(any(c["status"] == "applied" for c in by[i]["controller"]) for i in planned)
    # the hub signed every request for its controller (the log stream holds them)
    log = centre.dispatch.log(100_000)
    mine = [e for e in log if e["event"] == "request" and e.get("vehicle_id") == "AMB-F1"]
    assert {e["intersection_id"] for e in mine} == set(planned)
    assert {e["action"] for e in mine} >= {"restore"}
    # the ended escort is no longer followed: a cancel is refused, naming the field
    gone = client.delete(f"/api/v1/plans/escort/{eid}", headers=_h(tokens, "admin"))
    assert gone.status_code == 409 and gone.json()["error"]["field"] == "escort_id"


def test_cancel_restores_what_is_held_and_is_audited(client, tokens, demo_run, centre):
    city, _ = demo_run
    esc = client.post("/api/v1/plans/escort", headers=_h(tokens, "controller"),
                      json={"origin": "JF02", "destination": "JF08", "vehicle_id": "AMB-F2", "follow": True}).json()
    _, recs = _positions(city, "JF02", "JF08", [], "AMB-F2", 40.0, seed=5, depart_ms=int(time.time() * 1000) - 300_000)
    assert client.post("/api/v1/vehicles/positions", headers=_h(tokens, "controller"), json=recs[:5]).status_code == 202
    centre.follow.poll()
    view = client.get(f"/api/v1/plans/escort/{esc['escort_id']}", headers=_h(tokens, "viewer")).json()
    held = [s["intersection"] for s in view["signals"] if s["state"] in ("requested", "re-timed", "not needed")]
    assert held and view["vehicle"]["status"] == "following"
    # a controller of another corridor may not end it; its own may
    other = client.delete(f"/api/v1/plans/escort/{esc['escort_id']}", headers=_h(tokens, "controller_other"))
    assert other.status_code == 403
    assert client.delete(f"/api/v1/plans/escort/{esc['escort_id']}", headers=_h(tokens, "viewer")).status_code == 403
    ok = client.delete(f"/api/v1/plans/escort/{esc['escort_id']}", headers=_h(tokens, "controller"))
    assert ok.status_code == 200, ok.text
    centre.follow.poll()
    view = client.get(f"/api/v1/plans/escort/{esc['escort_id']}", headers=_h(tokens, "viewer")).json()
    assert view["vehicle"]["status"] == "cancelled"
    by = {s["intersection"]: s for s in view["signals"]}
    assert {by[i]["state"] for i in held} == {"released"}
    for i in held:
        assert centre.dispatch.current(i).action == "restore"
    audit = client.get("/api/v1/audit?limit=50", headers=_h(tokens, "admin")).json()["rows"]
    entry = next(e for e in audit if "escort-cancelled" in str(e) and esc["escort_id"] in str(e))
    assert entry["actor"].startswith("test-controller (controller ")


def test_positions_refusals_name_the_record_and_field(client, tokens):
    good = {"kind": "vehicle_position", "sensor_id": "AVL-X", "ts_ms": int(time.time() * 1000), "vehicle_id": "X",
            "vehicle_type": "ambulance", "lon": 120.1, "lat": 30.2, "speed_kmh": 30.0, "heading_deg": 90.0}
    h = _h(tokens, "controller")
    cases = [([good, {**good, "lat": 91.0}], "records[1].lat"),
             ([{**good, "speed_kmh": -1.0}], "records[0].speed_kmh"),
             ([{**good, "ts_ms": good["ts_ms"] + 3_600_000}], "records[0].ts_ms"),
             ([{**good, "kind": "traffic"}], "records[0].kind"),
             ([{k: v for k, v in good.items() if k != "lon"}], "records[0]"),
             ([], "records")]
    for body, field in cases:
        bad = client.post("/api/v1/vehicles/positions", headers=h, json=body)
        assert bad.status_code == 422, (body, bad.text)
        assert bad.json()["error"]["field"].startswith(field), (field, bad.json())
    assert client.post("/api/v1/vehicles/positions", headers=h, content=b"not json").status_code == 422
    assert client.post("/api/v1/vehicles/positions", headers=_h(tokens, "viewer"), json=good).status_code == 403
    assert client.post("/api/v1/vehicles/positions", json=good).status_code == 401
    assert client.post("/api/v1/vehicles/positions", headers=h, json=good).json() == {"accepted": 1}  # one record alone
