"""``POST /api/v1/plans/escort`` (一键护航 across corridors): a route over the city's road graph split into
corridor legs, one priority request per planned signal with the leg's direction and an arrival time that
grows along the route, consumed by the real controller hub (green windows signed for each controller);
scope of controller tokens per corridor, clear 422s naming the field, the audit under the token.
Real HTTP (uvicorn), real Redis."""
import time

import httpx
import pytest
import redis


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def _h(tokens, who):
    return {"Authorization": f"Bearer {tokens[who]}"}


def test_escort_across_two_corridors_is_consumed_by_the_hub(client, tokens, demo_run, cockpit_redis):
    from streams.controllers.centre import ControllerCentre

    city, _ = demo_run
    r = client.post("/api/v1/plans/escort", headers=_h(tokens, "admin"),
                    json={"origin": "JF02", "destination": "QT05", "via": ["X01"], "vehicle_id": "AMB-77",
                          "incident_id": "INC-1", "speed_kmh": 45, "start_in_s": 20})
    assert r.status_code == 202, r.text
    esc = r.json()
    assert [leg["corridor"] for leg in esc["legs"]] == ["jiefang", "qiutao"]
    assert esc["route"][0] == "JF02" and esc["route"][-1] == "QT05" and "X01" in esc["route"]
    assert esc["unplanned"] == ["X01"]  # on no corridor: nothing to bend, and said so
    planned = [s for leg in esc["legs"] for s in leg["signals"]]
    assert [q["intersection"] for q in esc["requests"]] == planned
    etas = [q["eta_s"] for q in esc["requests"]]
    assert etas[0] == 20 and all(b > a for a, b in zip(etas, etas[1:]))
    # free flow at 45 km/h: the last ETA is the route distance to it over the speed (plus the start)
    assert abs(etas[-1] - (20 + esc["length_m"] / (45 / 3.6))) < 1.0
    assert esc["requested_by"].startswith("test-admin (admin ")

    # the real hub consumes them like single requests: each becomes a green window or is not needed
    r_sync = redis.Redis.from_url(cockpit_redis)
    centre = ControllerCentre(city, r_sync, b"0123456789abcdef-master-escort")
    outcomes = centre.consume_priority(now_ms=int(time.time() * 1000), count=1000)
    mine = [o for o in outcomes if o.get("intersection") in planned and o.get("status") != "refused"]
    assert len(mine) >= len(planned), outcomes
    rows = client.get("/api/v1/plans/priority?limit=200", headers=_h(tokens, "viewer")).json()["rows"]
    shown = [x for x in rows if x.get("escort_id") == esc["escort_id"]]
    assert sorted(x["intersection"] for x in shown) == sorted(planned)
    assert {x["hub"]["status"] for x in shown} <= {"sent", "not needed", "denied"}
    assert any(x["hub"]["status"] == "sent" for x in shown)
    assert {x["direction"] for x in shown if x["corridor"] == "qiutao"} == {esc["legs"][1]["direction"]}
    sent = [x for x in shown if x["hub"]["status"] == "sent"]
    for x in sent:  # signed for that controller, as a single request would be
        assert centre.dispatch.current(x["intersection"]) is not None
    r_sync.close()

    # the escort's own view: every route signal in order, the unplanned one said so, the others the hub's answer
    state = client.get(f"/api/v1/plans/escort/{esc['escort_id']}", headers=_h(tokens, "viewer")).json()
    assert [s["intersection"] for s in state["signals"]] == esc["route"]
    by = {s["intersection"]: s for s in state["signals"]}
    assert by["X01"]["state"] == "unplanned" and by["X01"]["corridor"] is None and by["X01"]["eta_s"] is not None
    for x in shown:
        assert by[x["intersection"]]["state"] == x["hub"]["status"] and by[x["intersection"]]["request"] == x["id"]
    etas = [s["eta_s"] for s in state["signals"]]
    assert etas == sorted(etas) and etas[0] == 20
    listed = client.get("/api/v1/plans/escorts", headers=_h(tokens, "viewer")).json()["rows"]
    assert listed[0]["escort_id"] == esc["escort_id"] and listed[0]["route"] == esc["route"]
    missing = client.get("/api/v1/plans/escort/ESC-nope", headers=_h(tokens, "viewer"))
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "escort_id"

    audit = client.get("/api/v1/audit?limit=50", headers=_h(tokens, "admin")).json()["rows"]
    entry = next(e for e in audit if e.get("target") == esc["escort_id"] or esc["escort_id"] in str(e))
    assert entry["actor"].startswith("test-admin (admin ") and "escort-requested" in str(entry)


def test_escort_refusals_name_the_field(client, tokens):
    h = _h(tokens, "admin")
    bad = client.post("/api/v1/plans/escort", headers=h, json={"origin": "JF02", "destination": "NOPE", "vehicle_id": "A"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "destination"
    bad = client.post("/api/v1/plans/escort", headers=h, json={"origin": "JF02", "destination": "QT05", "via": ["ZZ"],
                                                               "vehicle_id": "A"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "via" and "'ZZ'" in bad.json()["error"]["message"]
    bad = client.post("/api/v1/plans/escort", headers=h, json={"origin": "JF02", "destination": "JF02", "vehicle_id": "A"})
    assert bad.status_code == 422 and "nothing to escort" in bad.json()["error"]["message"]
    bad = client.post("/api/v1/plans/escort", headers=h, json={"origin": "JF02", "destination": "JF06", "vehicle_id": "A",
                                                               "speed_kmh": 500})
    assert bad.status_code == 422 and "speed_kmh" in bad.json()["error"]["field"]
    # a controller token escorts only along its own corridors; the refusal names the one outside
    within = client.post("/api/v1/plans/escort", headers=_h(tokens, "controller"),
                         json={"origin": "JF02", "destination": "JF06", "vehicle_id": "BUS-1", "kind": "bus"})
    assert within.status_code == 202, within.text
    assert {q["corridor"] for q in within.json()["requests"]} == {"jiefang"}
    across = client.post("/api/v1/plans/escort", headers=_h(tokens, "controller"),
                         json={"origin": "JF02", "destination": "QT05", "via": ["X01"], "vehicle_id": "A"})
    assert across.status_code == 403 and "'qiutao'" in across.json()["error"]["message"]
    assert client.post("/api/v1/plans/escort", headers=_h(tokens, "viewer"),
                       json={"origin": "JF02", "destination": "JF06", "vehicle_id": "A"}).status_code == 403
