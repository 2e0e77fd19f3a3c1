"""Wires the alert service (rules → pipeline → Redis state → delivery) into ``citybrain run``."""
from __future__ import annotations

import logging

log = logging.getLogger("citybrain.alerts")


async def maybe_alert_service(city, settings):
    """Start the alert service for a run: embedded Redis under ``out_dir`` unless ``redis_url`` is set."""
    from streams.alerts.service import AlertService

    return await AlertService.from_settings(city, settings)
