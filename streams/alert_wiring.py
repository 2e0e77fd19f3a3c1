"""Wires the alert service (rules → pipeline → Redis state → delivery) into ``citybrain run``."""
from __future__ import annotations

import logging

log = logging.getLogger("citybrain.alerts")


async def maybe_alert_service(city, settings, fresh: bool = False):
    """Start the alert service for a run: embedded Redis under ``out_dir`` unless ``redis_url`` is set.

    ``fresh`` (``citybrain run --fresh``) forgets the previous run's alert state, whose stream time
    would otherwise make the new run's windows look already processed.
    """
    from streams.alerts.service import AlertService

    return await AlertService.from_settings(city, settings, fresh=fresh)
