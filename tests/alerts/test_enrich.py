import polars as pl

from brain.alerts.enrich import Enricher
from brain.city import demo_city_path, load_city

CITY = load_city(demo_city_path())


def test_sensor_tables_get_registry_columns_and_event_frames_keep_their_own_place():
    noise = next(s for s in CITY.sensors if s.type == "noise")
    cad = next(s for s in CITY.sensors if s.type == "cad_fire")
    cell = next(c for c in CITY.cells if c.district != cad.district)
    hz_sensor = next(s for s in CITY.sensors if s.type == "hazard")
    hz = next(h for h in CITY.hazards if h.id == hz_sensor.hazard)
    out = Enricher(CITY).apply({
        "noise_sensor": pl.DataFrame({"sensor_id": [noise.id], "laeq_db": [60.0]}),
        # a case reported through the fire dispatch terminal, in a cell of another district
        "cases": pl.DataFrame({"case_id": ["c1"], "sensor_id": [cad.id], "cell_id": [cell.id]}),
        "hazard_sensor": pl.DataFrame({"sensor_id": [hz_sensor.id], "value": [1.0]}),
        "plain": pl.DataFrame({"x": [1]}),
    })
    n = out["noise_sensor"].row(0, named=True)
    assert (n["type"], n["family"], n["district"], n["cell_id"], n["lon"]) == \
        ("noise", "environment", noise.district, noise.cell, noise.lon)
    c = out["cases"].row(0, named=True)
    assert c["district"] == cell.district != cad.district and c["street"] == cell.street
    assert (c["lon"], c["lat"]) == tuple(cell.center) and c["type"] == "cad_fire"
    h = out["hazard_sensor"].row(0, named=True)
    assert (h["hazard"], h["alarm_high"], h["hazard_name"]) == (hz.id, hz.alarm_high, hz.name)
    assert out["plain"].columns == ["x"]


def test_only_tables_missing_a_needed_column_are_joined():
    noise = next(s for s in CITY.sensors if s.type == "noise")
    t = {"noise_sensor": pl.DataFrame({"sensor_id": [noise.id], "district": ["given"], "laeq_db": [1.0]})}
    out = Enricher(CITY).apply(t, needs={"noise_sensor": {"sensor_id", "district", "laeq_db"}})
    assert out["noise_sensor"] is t["noise_sensor"]
    out = Enricher(CITY).apply(t, needs={"noise_sensor": {"type"}})
    assert out["noise_sensor"].row(0, named=True)["type"] == "noise"
    assert out["noise_sensor"].row(0, named=True)["district"] == "given"  # existing columns are kept
