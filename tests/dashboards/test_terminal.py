"""The terminal view (SSH): fits 120 columns, totals and "+N more", one row per incident, place names, local time."""
import asyncio
import io

import polars as pl
from rich.console import Console

from dashboards.terminal import ALERT_ROWS, alerts_table, district_table
from streams.alerts.service import AlertService


def render(*renderables, width=120) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    for r in renderables:
        console.print(r)
    return console.export_text()


def test_district_table_fits_120_columns_without_cutting_values(demo_run):
    _, out = demo_run
    district = pl.read_parquet(out / "history" / "district" / "*.parquet")
    district = district.filter(pl.col("window_end_ms") == district["window_end_ms"].max())
    city = pl.read_parquet(out / "history" / "city" / "*.parquet").tail(1)
    text = render(district_table(district, city))
    assert max(len(line) for line in text.splitlines()) <= 120
    for row in district.iter_rows(named=True):
        assert row["name"] in text
        assert f"{row['health_index']:.0f}" in text and f"{row['mean_speed_kmh']:.0f}" in text
    assert "…" not in text


def test_alerts_fold_per_incident_and_say_how_many_more():
    alerts = []
    for i in range(15):  # 15 incidents, the first five with two inhibited duplicates each
        alerts.append({"incident": f"inc{i}", "severity": "orange" if i < 3 else "blue", "summary": f"lead alert {i}",
                       "where": "南湖区 Nanhu / 湖滨街道", "since": "06-01 08:05", "state": "firing"})
        if i < 5:
            alerts += [{"incident": f"inc{i}", "severity": "blue", "summary": f"duplicate of {i}", "inhibited": True,
                        "where": "x", "since": "06-01 08:05", "state": "firing (inhibited)"}] * 2
    text = render(alerts_table(alerts))
    assert max(len(line) for line in text.splitlines()) <= 120
    assert "25 in 15 incident(s)" in text
    assert f"+{15 - ALERT_ROWS} more incident(s), {15 - ALERT_ROWS} alert(s)" in text
    assert "duplicate of" not in text  # folded under their incident's lead
    assert "lead alert 0  (+2 grouped)" in text
    assert text.index("lead alert 2") < text.index("lead alert 3")  # orange before blue


def test_view_rows_name_places_and_use_local_time(demo_run, cockpit_redis):
    city, _ = demo_run

    async def rows():
        svc = await AlertService.start(cockpit_redis, city=city, deliver=False)
        try:
            active = sum(1 for a in await svc.store.alerts() if a.status in ("firing", "acknowledged"))
            return svc.firing_for_view(), active
        finally:
            await svc.close()

    got, active = asyncio.run(rows())
    assert len(got) == active > 0  # every active alert, not a silent cap
    codes = {s.id for s in city.streets} | {d.id for d in city.districts}
    names = {s.name for s in city.streets} | {d.name for d in city.districts}
    for r in got:
        parts = r["where"].split(" / ")
        assert not codes & set(parts), r["where"]
        assert names & set(parts), r["where"]
