"""Prometheus gauges of the vital signs per district and for the city (what Grafana dashboards query).

Every gauge is ``citybrain_vitals_<column>`` with a ``district`` label (``city`` for the whole
city). :data:`VITAL_GAUGES` is the list of exported columns; ``dashboards/grafana/*.json`` may
only name these metrics and the engine's counters (a test checks it).

Example:
    >>> import polars as pl
    >>> d = pl.DataFrame({"district": ["nanhu"], "health_index": [91.5], "tpi": [2.5]})
    >>> text = vitals_text(d, None).decode()
    >>> 'citybrain_vitals_health_index{district="nanhu"} 91.5' in text
    True
"""
from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from dashboards.metrics import EngineCollector

#: (column, help) exported per district and for the city
VITAL_GAUGES: list[tuple[str, str]] = [
    ("health_index", "Composite health index 0-100"),
    ("tpi", "Traffic performance index 0-10 (DB11/T 785-2011)"),
    ("tti", "Travel time index (actual / free-flow)"),
    ("mean_speed_kmh", "Mean speed, km/h"),
    ("congested_km_share", "Share of road-km congested, 0-1"),
    ("aqi", "Air quality index (HJ 633-2012)"),
    ("noise_laeq_db", "Mean LAeq, dB(A)"),
    ("noise_within_limit_share", "Share of noise sensors within their GB 3096-2008 limit, 0-1"),
    ("cases_open", "Open grid cases"),
    ("cases_overdue", "Overdue grid cases"),
    ("outages_active", "Active utility outages"),
    ("incidents_active", "Active emergency incidents"),
    ("sensors_fresh_share", "Share of registered sensors reporting recently, 0-1"),
]
METRIC_PREFIX = "citybrain_vitals_"


class VitalsCollector:
    """Reads the newest district and city tables at scrape time (``source()`` returns them)."""

    def __init__(self, source):
        self.source = source

    def collect(self):
        district, city = self.source()
        for col, help_ in VITAL_GAUGES:
            g = GaugeMetricFamily(METRIC_PREFIX + col, help_, labels=["district"])
            for frame, key in ((district, "district"), (city, None)):
                if frame is None or col not in frame.columns:
                    continue
                names = frame[key].to_list() if key and key in frame.columns else ["city"] * frame.height
                for name, value in zip(names, frame[col].to_list()):
                    if value is not None and math.isfinite(float(value)):
                        g.add_metric([str(name or "city")], float(value))
            yield g


def vitals_text(district, city, pipeline=None, driver=None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(VitalsCollector(lambda: (district, city)))
    if pipeline is not None:
        registry.register(EngineCollector(pipeline, driver))
    return generate_latest(registry)
