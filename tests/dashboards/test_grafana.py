"""Every query of the shipped Grafana dashboard names metrics the engine really exports at /metrics."""
import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

import dashboards
from dashboards.api.prom import vitals_text

GRAFANA = Path(dashboards.__file__).parent / "grafana"
METRIC = re.compile(r"\bcitybrain_[a-z0-9_]+\b")


def exported_names(demo_run) -> set[str]:
    """Sample names of a scrape after a real run: the district and city gauges and the engine counters."""
    import polars as pl

    from brain.pipeline import CityPipeline

    city, out = demo_run
    district = pl.read_parquet(out / "history" / "district" / "*.parquet")
    city_rows = pl.read_parquet(out / "history" / "city" / "*.parquet")
    pipe = CityPipeline(city)
    pipe.ingest_jsonl(b'{"kind":"traffic","sensor_id":"nope","ts_ms":1}\n{oops\n')
    text = vitals_text(district, city_rows, pipe).decode()
    return {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}


def queries(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("expr", "definition") and isinstance(v, str):
                yield v
            elif k == "query" and isinstance(v, dict) and isinstance(v.get("query"), str):
                yield v["query"]
            else:
                yield from queries(v)
    elif isinstance(node, list):
        for v in node:
            yield from queries(v)


def test_every_grafana_query_names_an_exported_metric(demo_run):
    names = exported_names(demo_run)
    files = sorted(GRAFANA.glob("*.json"))
    assert files, "no dashboard JSON shipped"
    for f in files:
        qs = list(queries(json.loads(f.read_text(encoding="utf-8"))))
        assert len(qs) >= 10, f.name
        for q in qs:
            used = METRIC.findall(q)
            assert used, f"{f.name}: query {q!r} names no citybrain metric"
            unknown = [m for m in used if m not in names]
            assert not unknown, f"{f.name}: {q!r} uses {unknown}, not exported (exported: {sorted(names)})"


def test_the_checker_catches_a_misspelt_metric(demo_run):
    names = exported_names(demo_run)
    assert "citybrain_vitals_health_index" in names and "citybrain_records_total" in names
    assert "citybrain_vitals_healthindex" not in names
