"""Grid cases by responsible unit and the per-sensor freshness map, over real HTTP, checked against
the engine's own independent tables (grid_category, sensor_health) of the same window."""
import httpx
import polars as pl
import pytest


@pytest.fixture(scope="module")
def client(server, tokens):
    with httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {tokens['viewer']}"}) as c:
        yield c


def test_cases_by_unit_add_up_to_the_city_wide_figures_by_category(client, demo_run):
    _, out = demo_run
    s = client.get("/api/v1/grid/summary").json()
    assert s["by_unit"], "a 3-hour demo run has grid cases"
    # two computations: the vital signs' batch kernel (by category) and case_metrics by (unit, category)
    for k in ("open_backlog", "overdue", "new_last_hour", "closed_recent", "closed_on_time"):
        assert sum(u[k] for u in s["by_unit"]) == sum(c[k] or 0 for c in s["by_category"]), k
        assert sum(u[k] for u in s["by_unit"]) == sum(r[k] for r in s["by_unit_category"]), k
    for u in s["by_unit"]:
        assert u["unit"] and u["open_backlog"] >= u["overdue"] >= 0
        assert u["on_time_closure_rate"] is None or 0 <= u["on_time_closure_rate"] <= 1
        if u["closed_recent"]:
            assert u["on_time_closure_rate"] == pytest.approx(u["closed_on_time"] / u["closed_recent"])
    backlogs = [u["open_backlog"] for u in s["by_unit"]]
    assert backlogs == sorted(backlogs, reverse=True)
    # the unit filter keeps only that unit; the Parquet history holds the same rows as the answer
    one = s["by_unit"][0]["unit"]
    only = client.get("/api/v1/grid/summary", params={"unit": one}).json()
    assert [u["unit"] for u in only["by_unit"]] == [one]
    hist = pl.read_parquet(out / "history" / "grid_unit" / "*.parquet")
    last = hist.filter(pl.col("window_end_ms") == hist["window_end_ms"].max())
    assert last["open_backlog"].sum() == sum(u["open_backlog"] for u in s["by_unit"])


def test_freshness_map_has_every_sensor_and_agrees_with_sensor_health(client, demo_run):
    city, out = demo_run
    m = client.get("/api/v1/sensors/freshness/map").json()
    assert {r["sensor_id"] for r in m["rows"]} == {s.id for s in city.sensors}
    pos = {s.id: (s.lon, s.lat) for s in city.sensors}
    for r in m["rows"]:
        assert (r["lon"], r["lat"]) == pytest.approx(pos[r["sensor_id"]])
        assert (r["last_seen_ms"] is None) == (r["freshness"] == "never") == (r["age_s"] is None)
        if r["age_s"] is not None:
            assert r["age_s"] == pytest.approx((m["window_end_ms"] - r["last_seen_ms"]) / 1000)
    assert sum(m["counts"].values()) == len(city.sensors) and m["counts"]["fresh"] > 0
    # the vital signs count fresh / stale / silent / never per district and family independently
    health = client.get("/api/v1/vitals/sensor_health/latest").json()
    assert health["window_end_ms"] == m["window_end_ms"]
    by_district = {}
    for r in m["rows"]:
        by_district.setdefault(r["district"], {"fresh": 0, "stale": 0, "silent": 0, "never": 0})[r["freshness"]] += 1
    for d, counts in by_district.items():
        rows = [h for h in health["rows"] if h["district"] == d]
        for k, n in counts.items():
            assert sum(h[k] for h in rows) == n, (d, k)
    # filters, and dead letters per sensor joined from the dead-letter files
    nanhu = client.get("/api/v1/sensors/freshness/map", params={"district": "nanhu", "type": "noise"}).json()
    assert nanhu["rows"] and all(r["district"] == "nanhu" and r["type"] == "noise" for r in nanhu["rows"])
    dead = {d["sensor_id"]: d["total"] for d in client.get("/api/v1/sensors/deadletters?limit=5000").json()["by_sensor"]}
    assert all(r["dead_letters"] == dead.get(r["sensor_id"], 0) for r in m["rows"])
