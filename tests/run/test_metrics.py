"""Prometheus /metrics of a running engine, scraped over real HTTP."""
from __future__ import annotations

import asyncio
import socket

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from brain.city import demo_city_path, load_city
from brain.pipeline import CityPipeline
from dashboards.metrics import start_metrics_server
from streams.feeds import SimulatorSource
from streams.local import LocalDriver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_metrics_match_the_pipeline_counters(tmp_path):
    async def go():
        city = load_city(demo_city_path())
        pipe = CityPipeline(city)
        source = SimulatorSource(city, seed=3)
        driver = LocalDriver(pipe, source, tmp_path, until_ms=source.start_ms + 30 * 60_000)
        port = _free_port()
        runner = await start_metrics_server("127.0.0.1", port, pipe, driver)
        try:
            await driver.run()
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    assert resp.status == 200
                    text = await resp.text()
        finally:
            await runner.cleanup()
        return pipe, text

    pipe, text = asyncio.run(go())
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("citybrain_records_total", (("outcome", "in"),))] == pipe.counters["records_in"] > 0
    assert samples[("citybrain_records_total", (("outcome", "applied"),))] == pipe.counters["applied"]
    assert samples[("citybrain_windows_closed_total", ())] == pipe.counters["windows_closed"] > 0
    assert samples[("citybrain_ticks_skipped_total", ())] == pipe.counters["ticks_skipped"] == 0  # a continuous stream
    assert samples[("citybrain_watermark_seconds", ())] * 1000 == pipe.clock.watermark_ms
