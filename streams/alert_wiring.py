"""Wires the alert service into ``citybrain run``."""
from __future__ import annotations


async def maybe_alert_service(city, settings):
    """The alert service for the run, or None while streams.alerts is not available."""
    return None
