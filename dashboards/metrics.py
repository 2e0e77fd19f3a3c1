"""Prometheus ``/metrics`` for a running engine: record accounting, dead-letter reasons, windows, lag.

Example (scrape while ``citybrain run --metrics-port 9108`` runs)::

    curl -s 127.0.0.1:9108/metrics | grep citybrain_records
"""
from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class EngineCollector:
    """Reads the pipeline's counters at scrape time (no double bookkeeping).

    Example:
        >>> from brain.city import demo_city_path, load_city
        >>> from brain.pipeline import CityPipeline
        >>> pipe = CityPipeline(load_city(demo_city_path()))
        >>> _ = pipe.ingest_jsonl(b"{oops")
        >>> [line for line in metrics_text(pipe).decode().splitlines() if line.startswith("citybrain_dead_letters_total")]
        ['citybrain_dead_letters_total{reason="malformed"} 1.0']
    """

    def __init__(self, pipeline, driver=None):
        self.pipeline = pipeline
        self.driver = driver

    def collect(self):
        c = self.pipeline.counters
        records = CounterMetricFamily("citybrain_records", "Input records by outcome", labels=["outcome"])
        for outcome in ("records_in", "applied", "dead_lettered", "late"):
            records.add_metric([outcome.replace("records_", "")], c.get(outcome, 0))
        yield records
        dead = CounterMetricFamily("citybrain_dead_letters", "Dead-lettered records by reason", labels=["reason"])
        for key, value in c.items():
            if key.startswith("dead."):
                dead.add_metric([key[5:]], value)
        yield dead
        applied = CounterMetricFamily("citybrain_applied_records", "Applied records by kind", labels=["kind"])
        for key, value in c.items():
            if key.startswith("applied."):
                applied.add_metric([key[8:]], value)
        yield applied
        yield CounterMetricFamily("citybrain_windows_closed", "Vital-sign windows closed", value=c.get("windows_closed", 0))
        yield CounterMetricFamily("citybrain_ticks_skipped", "Ticks jumped over in stretches of more than a day with no record",
                                  value=c.get("ticks_skipped", 0))
        wm = self.pipeline.clock.watermark_ms
        yield GaugeMetricFamily("citybrain_watermark_seconds", "Event-time watermark (Unix s)", value=(wm or 0) / 1000)
        if self.driver is not None:
            yield CounterMetricFamily("citybrain_checkpoints", "Checkpoints written", value=self.driver.stats.checkpoints)


def metrics_text(pipeline, driver=None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(pipeline, driver))
    return generate_latest(registry)


async def start_metrics_server(host: str, port: int, pipeline, driver=None) -> web.AppRunner:
    async def handle(_request):
        return web.Response(body=metrics_text(pipeline, driver), content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
