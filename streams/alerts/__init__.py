"""Alerts in motion: Redis-backed state (:mod:`.store`), delivery workers (:mod:`.delivery`) and the
service a driver calls once per closed window (:class:`AlertService`)."""
from streams.alerts.delivery import DeliveryConfig, DeliveryPool, PermanentError
from streams.alerts.service import AlertService, load_subscriptions_file
from streams.alerts.store import AlertStore

__all__ = ["AlertService", "AlertStore", "DeliveryConfig", "DeliveryPool", "PermanentError", "load_subscriptions_file"]
