"""Generated cities: valid (the loader accepts them), exact sensor counts, deterministic, every sensor family,
drivable by the simulator; `citybrain city generate` and `city check` agree; errors are one clear line."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.city import city_from_data, load_city
from brain.city.synth import SynthError, build, write
from citybrain.cli import main


@settings(max_examples=12, deadline=None)
@given(st.integers(1, 12).flatmap(lambda d: st.tuples(st.just(d), st.integers(150 * d, 150 * d + 6000))), st.integers(0, 2**31))
def test_any_size_is_a_valid_city_with_exactly_that_many_sensors(dims, seed):
    districts, sensors = dims
    data, dfc, cfc = build(sensors, districts, seed)
    city = city_from_data(data, dfc, cfc)  # raises CityError listing problems if invalid
    assert len(city.sensors) == sensors and len(city.districts) == districts
    assert {s.family for s in city.sensors} == {"traffic", "grid", "environment", "emergency"}
    assert len({s.id for s in city.sensors}) == sensors


def test_written_folder_loads_and_is_deterministic(tmp_path):
    write(tmp_path / "a", 4_000, 6, seed=7)
    write(tmp_path / "b", 4_000, 6, seed=7)
    for name in ("city.yaml", "districts.geojson", "cells.geojson"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    city = load_city(tmp_path / "a")
    assert len(city.sensors) == 4_000 and city.cell_polygons and city.district_polygons
    write(tmp_path / "c", 4_000, 6, seed=8)
    assert (tmp_path / "c" / "city.yaml").read_bytes() != (tmp_path / "a" / "city.yaml").read_bytes()


def test_the_simulator_drives_a_generated_city_and_its_green_waves(tmp_path):
    from brain.pipeline import CityPipeline
    from streams.greenwave_operator import maybe_greenwave_operator
    from streams.sim import Simulator

    write(tmp_path / "c", 3_000, 3, seed=1)
    city = load_city(tmp_path / "c")
    assert len(city.corridors) == 3 and all(len(c.intersections) >= 2 for c in city.corridors)
    greenwave = maybe_greenwave_operator(city, tmp_path / "out")
    sim = Simulator(city, seed=1)
    pipe = CityPipeline(city, window_operators=[greenwave])
    for chunk in sim.jsonl_batches(sim.start_ms + 3_600_000, batch_s=300):
        pipe.ingest_jsonl(chunk)
    c = pipe.counters
    assert c["records_in"] > 3_000 and c["applied"] == c["records_in"] and c["windows_closed"] >= 10
    plans = sorted(p.name for p in (tmp_path / "out" / "signal_plans").glob("*.plans.jsonl"))
    assert plans == [f"{c.id}.plans.jsonl" for c in sorted(city.corridors, key=lambda c: c.id)]


@pytest.mark.parametrize("sensors, districts, message", [
    (100, 4, "give at least 600"),
    (5_000, 0, "between 1 and 98"),
    (5_000, 120, "between 1 and 98"),
    (3_000_000, 4, "more than 45 km"),
])
def test_impossible_sizes_say_why(sensors, districts, message):
    with pytest.raises(SynthError, match=message):
        build(sensors, districts)


def test_cli_generate_then_check(tmp_path, capsys):
    out = tmp_path / "big"
    assert main(["city", "generate", "--sensors", "3000", "--districts", "4", "--seed", "3", "--out", str(out)]) == 0
    assert "3000 sensors" in capsys.readouterr().out
    assert main(["city", "check", str(out)]) == 0
    assert "ok:" in capsys.readouterr().out
    assert main(["city", "generate", "--sensors", "3000", "--out", str(out)]) == 2  # not an empty folder
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert main(["city", "generate", "--sensors", "10", "--out", str(tmp_path / "small")]) == 2
    err = capsys.readouterr().err
    assert "cannot equip" in err and "Traceback" not in err


@pytest.mark.parametrize("module", ["brain.city.synth", "brain.city.flowyaml"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
