"""``citybrain plan`` end to end through the real CLI entry point."""
from __future__ import annotations

import json

import pytest

from citybrain.cli import main
from tests.greenwave.test_webster_model import base

CORRIDOR = base(volume_out_vph=900, volume_in_vph=500)


def test_plan_from_json_with_diagram(tmp_path, capsys):
    f = tmp_path / "c.json"
    f.write_text(json.dumps(CORRIDOR))
    out_png = tmp_path / "wave.png"
    assert main(["plan", "--corridor-json", str(f), "--diagram", str(out_png)]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [it["id"] for it in plan["intersections"]] == ["A", "B"]
    assert 60 <= plan["cycle_s"] <= 120
    assert plan["band_out_s"] > 0
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = tmp_path / "wave.svg"
    assert main(["plan", "--corridor-json", str(f), "--ntcip", "--diagram", str(svg)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["controllers"][1]["pattern"]["offset_time"] >= 0
    assert b"<svg" in svg.read_bytes()[:500]


def test_plan_from_demo_city(capsys):
    from brain.city import demo_city_path, load_city

    city = load_city(demo_city_path())
    cor = city.corridors[0]
    assert main(["plan", "--corridor", cor.id]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [it["id"] for it in plan["intersections"]] == cor.intersections


@pytest.mark.parametrize(
    "payload, message",
    [
        ("{not json", "not valid JSON"),
        (json.dumps(base(speed_out_kmh=-5)), "positive speed"),
    ],
)
def test_bad_corridor_file_is_a_clear_error(tmp_path, capsys, payload, message):
    f = tmp_path / "c.json"
    f.write_text(payload)
    assert main(["plan", "--corridor-json", str(f)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_file_and_unknown_corridor(tmp_path, capsys):
    assert main(["plan", "--corridor-json", str(tmp_path / "nope.json")]) == 2
    assert "cannot read corridor file" in capsys.readouterr().err
    assert main(["plan", "--corridor", "no-such-road"]) == 2
    assert "unknown corridor" in capsys.readouterr().err
