"""`citybrain run` publishes plans; `citybrain plans latest` answers from them; broken corridors are clear errors."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from brain.city import demo_city_path, load_city
from brain.greenwave.model import corridor_from_city

ROOT = Path(__file__).resolve().parents[2]


def citybrain(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "citybrain", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_run_then_plans_latest(tmp_path):
    out = tmp_path / "run"
    r = citybrain("run", "--headless", "--speed", "0", "--duration", "3h", "--no-alerts", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    r = citybrain("plans", "latest", "--out", str(out))
    assert r.returncode == 0, r.stderr
    docs = json.loads(r.stdout)
    city = load_city(demo_city_path())
    assert sorted(docs) == sorted(c.id for c in city.corridors)
    for cid, doc in docs.items():
        log = (out / "signal_plans" / f"{cid}.plans.jsonl").read_text().splitlines()
        assert doc == json.loads(log[-1])  # the latest is the last one published
        spec = corridor_from_city(city, cid)
        assert [c["intersection"] for c in doc["controllers"]] == [it.id for it in spec.intersections]
    # the plans also went to the vital-sign history
    import polars as pl

    hist = pl.read_parquet(out / "history" / "signal_plans" / "*.parquet")
    assert sorted(hist["plan_id"].to_list()) == sorted(json.loads(x)["plan_id"] for cid in docs
                                                       for x in (out / "signal_plans" / f"{cid}.plans.jsonl").read_text().splitlines())
    one = citybrain("plans", "latest", "--corridor", "qiutao", "--out", str(out))
    assert one.returncode == 0 and list(json.loads(one.stdout)) == ["qiutao"]
    hist_cmd = citybrain("plans", "history", "--corridor", "jiefang", "-n", "2", "--out", str(out))
    assert hist_cmd.returncode == 0
    assert json.loads(hist_cmd.stdout)[0] == docs["jiefang"]
    bad = citybrain("plans", "latest", "--corridor", "nope", "--out", str(out))
    assert bad.returncode != 0 and "no plan published for corridor 'nope'" in bad.stderr and "Traceback" not in bad.stderr
    empty = citybrain("plans", "latest", "--out", str(tmp_path / "nothing"))
    assert empty.returncode != 0 and "no published plans" in empty.stderr and "Traceback" not in empty.stderr


def test_run_with_an_unresolvable_corridor_is_a_clear_error(tmp_path):
    city_dir = tmp_path / "city"
    shutil.copytree(demo_city_path(), city_dir)
    text = (city_dir / "city.yaml").read_text(encoding="utf-8")
    # JF-03E no longer ends at Jiefang Rd / Xixi St: its line stops 300 m short
    old = "line: [[120.109435, 30.24656], [120.115977, 30.24656]]"
    assert old in text
    (city_dir / "city.yaml").write_text(text.replace(old, "line: [[120.109435, 30.24656], [120.112877, 30.24656]]"), encoding="utf-8")
    r = citybrain("run", "--headless", "--speed", "0", "--duration", "1h", "--no-alerts", "--city", str(city_dir),
                  "--out", str(tmp_path / "out"), timeout=120)
    assert r.returncode != 0
    assert "jiefang" in r.stderr and "no segment runs JF03 -> JF04 (outbound)" in r.stderr
    assert "Traceback" not in r.stderr
