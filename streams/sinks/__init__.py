"""Sinks: where the engine writes what it computed (history, dead letters, plans, alerts)."""
