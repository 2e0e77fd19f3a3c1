"""Wires the alert service (rules → pipeline → Redis state → delivery) into ``citybrain run``."""
from __future__ import annotations

import logging

log = logging.getLogger("citybrain.alerts")


async def maybe_alert_service(city, settings, fresh: bool = False):
    """Start the alert service for a run: embedded Redis under ``out_dir`` unless ``redis_url`` is set.

    ``fresh`` (``citybrain run --fresh``) forgets the previous run's alert state, whose stream time
    would otherwise make the new run's windows look already processed. Raises ``ConnectionError``
    with a readable message when Redis cannot be reached.
    """
    import redis.exceptions

    from streams.alerts.service import AlertService

    try:
        return await AlertService.from_settings(city, settings, fresh=fresh)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError, RuntimeError) as exc:
        # Unreachable at start: one clear sentence for the command line, not a driver traceback.
        where = settings.redis_url or "the embedded Redis"
        raise ConnectionError(f"cannot reach the alert-state Redis at {where} ({exc}); is it running, and is "
                              "CITYBRAIN_REDIS_URL right? (--no-alerts runs without alerts)") from None
