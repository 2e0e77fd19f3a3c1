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

    def __init__(self, pipeline, driver=None, alerts=None):
        self.pipeline = pipeline
        self.driver = driver
        self.alerts = alerts

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
        if self.alerts is not None:
            yield from alert_state_metrics(self.alerts)


def alert_state_metrics(alerts):
    """The alert-state writes to Redis (:class:`streams.alerts.journal.JournalStats`): is Redis up, how many
    transactions and notifications wait in the bounded buffer, reconnects, resyncs."""
    st = alerts.journal.stats
    yield GaugeMetricFamily("citybrain_alert_redis_up", "1 when the alert-state Redis answered the last write",
                            value=1 if st.redis_up else 0)
    yield GaugeMetricFamily("citybrain_alert_tx_buffered", "Alert-state transactions waiting for Redis",
                            value=st.buffered_tx)
    yield GaugeMetricFamily("citybrain_alert_tx_buffer_max", "Bound of that buffer (over it the oldest are merged)",
                            value=st.max_buffered_tx)
    yield GaugeMetricFamily("citybrain_alert_notifications_buffered", "Notifications in buffered transactions, in memory",
                            value=st.buffered_notifications)
    yield GaugeMetricFamily("citybrain_alert_notifications_spilled",
                            "Notifications of buffered transactions waiting in the spill file (on disk)",
                            value=st.spilled_notifications)
    yield GaugeMetricFamily("citybrain_alert_spill_bytes", "Size of the alert spill file (0 once drained)",
                            value=st.spill_bytes)
    for name, field, help_ in (
            ("applied_tx", "applied_tx_total", "Alert-state transactions applied to Redis"),
            ("merged_tx", "merged_tx_total", "Buffered transactions merged to keep the buffer bounded"),
            ("redis_failures", "failures_total", "Alert-state writes that failed because Redis was unreachable"),
            ("redis_reconnects", "reconnects_total", "Times Redis answered again after an outage"),
            ("redis_resyncs", "resyncs_total", "Times Redis came back with less than it had confirmed (rewritten)"),
            ("reenqueued_notifications", "reenqueued_notifications_total", "Notifications enqueued again after Redis lost them"),
            ("spill_failures", "spill_failures_total", "Spill file writes that failed (disk full): notifications kept in memory")):
        yield CounterMetricFamily(f"citybrain_alert_{name}", help_, value=getattr(st, field))
    yield CounterMetricFamily("citybrain_alert_redis_outage_seconds", "Time the alert-state Redis was unreachable",
                              value=st.outage_seconds_total)
    yield CounterMetricFamily("citybrain_alert_stale_input_windows",
                              "Windows evaluated with the last known silences because Redis was down",
                              value=alerts.inputs_stale_windows)


def metrics_text(pipeline, driver=None, alerts=None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(pipeline, driver, alerts))
    return generate_latest(registry)


def alert_metrics_text(alerts) -> bytes:
    """Only the alert-state series (the same ones ``/metrics`` serves)."""
    class _Alerts:
        def collect(self):
            yield from alert_state_metrics(alerts)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Alerts())
    return generate_latest(registry)


async def delivery_metrics_text(alerts, timeout_s: float = 1.0) -> bytes:
    """The delivery backlog per subscriber (queued, in flight, parked for retry) and its counters; with Redis
    unreachable, the workers' own counts (in flight and the last outbox length seen)."""
    import asyncio

    if alerts is None or alerts.pool is None:
        return b""
    try:
        return (await asyncio.wait_for(alerts.pool.metrics_text(), timeout_s)).encode()
    except Exception:  # Redis down: what the workers know without it
        lines = ["# TYPE citybrain_delivery_queued gauge", "# TYPE citybrain_delivery_in_flight gauge"]
        for sid, w in alerts.pool.workers.items():
            lines += [f'citybrain_delivery_queued{{subscription="{sid}"}} {w.queued}',
                      f'citybrain_delivery_in_flight{{subscription="{sid}"}} {w.in_flight}']
        return ("\n".join(lines) + "\n").encode()


async def start_metrics_server(host: str, port: int, pipeline, driver=None, alerts=None) -> web.AppRunner:
    async def handle(_request):
        body = metrics_text(pipeline, driver, alerts) + await delivery_metrics_text(alerts)
        return web.Response(body=body, content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
