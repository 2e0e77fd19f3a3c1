"""``citybrain city check|show``: ok with counts, every problem listed with exit 2, a map on request."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from brain.city import demo_city_path, load_city
from citybrain.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_check_demo_ok(capsys):
    assert main(["city", "check", str(demo_city_path())]) == 0
    out = capsys.readouterr().out
    city = load_city(demo_city_path())
    assert out.startswith("ok: ")
    assert f"{len(city.sensors)} sensors" in out and f"{len(city.segments)} segments" in out


def test_check_defaults_to_demo(capsys):
    assert main(["city", "check"]) == 0
    assert "Demo City" in capsys.readouterr().out


def test_check_lists_every_problem_and_exits_2(city_dir, capsys):
    def mutate(d):
        d["sensors"][12]["cell"] = "C99"
        d["segments"][3]["lanes"] = 0
        d["corridors"][0]["positions_m"][0] = 7.0

    folder = city_dir(mutate)
    assert main(["city", "check", str(folder)]) == 2
    out = capsys.readouterr().out
    assert "3 problems" in out.splitlines()[0]
    assert "city.yaml: sensors[12].cell: unknown cell 'C99'" in out
    assert "city.yaml: segments[3].lanes: lanes must be > 0, got 0" in out
    assert "city.yaml: corridors[0].positions_m[0]: the first position must be 0" in out


def test_check_missing_folder_and_bad_yaml(tmp_path, city_dir, capsys):
    assert main(["city", "check", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().out
    folder = city_dir()
    (folder / "city.yaml").write_text("name: [unclosed\n", encoding="utf-8")
    assert main(["city", "check", str(folder)]) == 2
    out = capsys.readouterr().out
    assert "city.yaml: line 2, column 1: YAML syntax error" in out


def test_show_summary_and_map(tmp_path, capsys):
    out_png = tmp_path / "maps" / "demo.png"
    assert main(["city", "show", str(demo_city_path()), "--map", str(out_png)]) == 0
    out = capsys.readouterr().out
    city = load_city(demo_city_path())
    for d in city.districts:
        assert d.id in out and d.admin_code in out
    total = next(line for line in out.splitlines() if line.startswith("total"))
    assert total.split()[-1] == str(len(city.sensors))
    for c in city.corridors:
        assert f"{c.id} ({c.name}): {len(c.intersections)} intersections" in out
    data = out_png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_show_broken_city_is_a_user_error(city_dir, capsys):
    folder = city_dir(lambda d: d["districts"][0].update(admin_code="1"))
    assert main(["city", "show", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("citybrain: error:") and "districts[0].admin_code" in err and "Traceback" not in err


def test_real_subprocess(city_dir):
    folder = city_dir(lambda d: d["sensors"][5].update(type="lidar"))
    exe = Path(sys.executable).with_name("citybrain")
    proc = subprocess.run([str(exe), "city", "check", str(folder)], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2, proc.stderr
    assert "city.yaml: sensors[5].type: unknown sensor type 'lidar'" in proc.stdout
    assert "Traceback" not in proc.stderr
    ok = subprocess.run([str(exe), "city", "check"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert ok.returncode == 0 and ok.stdout.startswith("ok: ")
