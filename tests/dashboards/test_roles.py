"""Every role × every endpoint of API v1 over real HTTP (uvicorn on 127.0.0.1, real Redis): allowed, or 401/403.

The expected matrix is written out here, independently of ``dashboards.api.auth.PERMISSIONS``, so a
change of the permission table that was not meant shows up as a failure.
"""
import httpx
import pytest

ALL = {"viewer", "operator", "department", "controller", "admin"}
OPS = {"operator", "admin"}
DEPT = {"department", "admin"}
CTRL = {"controller", "admin"}
ADMIN = {"admin"}

# (method, path template, json body or None, roles allowed)
ENDPOINTS = [
    ("GET", "/api/v1/whoami", None, ALL),
    ("GET", "/api/v1/vitals", None, ALL),
    ("GET", "/api/v1/vitals/district/latest", None, ALL),
    ("GET", "/api/v1/vitals/segment_traffic/history?limit=5&district=nanhu", None, ALL),
    ("GET", "/api/v1/city", None, ALL),
    ("GET", "/api/v1/city/districts.geojson", None, ALL),
    ("GET", "/api/v1/alerts", None, ALL),
    ("GET", "/api/v1/incidents", None, ALL),
    ("GET", "/api/v1/alerts/{fp}", None, ALL),
    ("GET", "/api/v1/silences", None, ALL),
    ("GET", "/api/v1/plans", None, ALL),
    ("GET", "/api/v1/plans/jiefang/history", None, ALL),
    ("GET", "/api/v1/plans/jiefang/diagram.svg", None, ALL),
    ("GET", "/api/v1/sensors", None, ALL),
    ("GET", "/api/v1/plans/priority", None, ALL),
    ("GET", "/api/v1/plans/controllers", None, ALL),
    ("GET", "/api/v1/sensors/freshness", None, ALL),
    ("GET", "/api/v1/sensors/deadletters", None, ALL),
    ("GET", "/api/v1/sensors/freshness/map", None, ALL),
    ("GET", "/api/v1/grid/summary", None, ALL),
    ("GET", "/metrics", None, ALL),
    ("GET", "/api/v1/audit", None, OPS),
    ("POST", "/api/v1/alerts/{fp}/ack", {"comment": "roles test"}, OPS),
    ("POST", "/api/v1/alerts/{fp}/unack", {"comment": "roles test"}, OPS),
    ("POST", "/api/v1/silences", {"matchers": ["district=nanhu", "rule=roles_test"], "duration": "30m"}, OPS),
    ("POST", "/api/v1/silences/{silence}/expire", None, OPS),
    ("GET", "/api/v1/subscriptions", None, DEPT),
    ("PUT", "/api/v1/subscriptions/roles-test", {"department": "交警支队", "channel": {"type": "log"}}, DEPT),
    ("DELETE", "/api/v1/subscriptions/roles-test", None, DEPT),
    ("POST", "/api/v1/plans/jiefang/priority", {"intersection": "JF01", "eta_s": 40, "vehicle_id": "AMB-1"}, CTRL),
    ("POST", "/api/v1/plans/escort", {"origin": "JF02", "destination": "JF06", "vehicle_id": "AMB-2"}, CTRL),
    ("POST", "/api/v1/vehicles/positions", {"kind": "vehicle_position", "sensor_id": "AVL-R", "ts_ms": 1_780_000_000_000,
                                            "vehicle_id": "AMB-R", "vehicle_type": "ambulance", "lon": 120.1, "lat": 30.2,
                                            "speed_kmh": 30.0, "heading_deg": 0.0}, CTRL),
    ("DELETE", "/api/v1/plans/escort/ESC-roles-none", None, CTRL),
    ("GET", "/api/v1/tokens", None, ADMIN),
    ("POST", "/api/v1/tokens", {"name": "made-by-test", "role": "viewer", "ttl_h": 1}, ADMIN),
    ("DELETE", "/api/v1/tokens/{token_id}", None, ADMIN),
    ("POST", "/api/v1/admin/rules/reload?wait_s=0", None, ADMIN),
]


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def ids(client, tokens, firing_fp):
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    sil = client.post("/api/v1/silences", headers=admin, json={"matchers": ["district=xiyuan", "rule=x"], "duration": "1h"})
    assert sil.status_code == 201, sil.text
    tok = client.post("/api/v1/tokens", headers=admin, json={"name": "to-revoke", "role": "viewer"}).json()
    return {"fp": firing_fp[-1], "silence": sil.json()["id"], "token_id": tok["id"]}


@pytest.mark.parametrize("method,path,body,allowed", ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
def test_every_role_on_every_endpoint(client, tokens, ids, method, path, body, allowed):
    url = path.format(**ids)
    anonymous = client.request(method, url, json=body)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.json()["error"]["field"] == "Authorization"
    bad = client.request(method, url, json=body, headers={"Authorization": "Bearer cbt_00000000_forged"})
    assert bad.status_code == 401
    for role in sorted(ALL):
        r = client.request(method, url, json=body, headers={"Authorization": f"Bearer {tokens[role]}"})
        if role in allowed:
            assert r.status_code < 400 or r.status_code in (404, 409), (role, r.status_code, r.text)
        else:
            assert r.status_code == 403, (role, r.status_code, r.text)
            assert "may not" in r.json()["error"]["message"]


def test_health_answers_without_a_token_and_nothing_else_does(client):
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/api/v1/live").status_code == 401


def test_revoked_and_expired_tokens_are_refused(client, tokens):
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    made = client.post("/api/v1/tokens", headers=admin, json={"name": "short-lived", "role": "viewer"}).json()
    h = {"Authorization": f"Bearer {made['token']}"}
    assert client.get("/api/v1/whoami", headers=h).json()["name"] == "short-lived"
    assert client.delete(f"/api/v1/tokens/{made['id']}", headers=admin).status_code == 200
    assert client.get("/api/v1/whoami", headers=h).status_code == 401
    listed = client.get("/api/v1/tokens", headers=admin).json()["rows"]
    assert all("secret_sha256" not in t and "token" not in t for t in listed)
