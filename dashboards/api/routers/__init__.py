"""API v1 routers, one per resource (vitals, alerts, subscriptions, plans, sensors, grid, admin, live)."""
