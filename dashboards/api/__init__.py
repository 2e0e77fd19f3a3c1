"""The command-centre service: API v1 with identities and roles, live push, /metrics, the web cockpit.

Modules: :mod:`.app` (the app factory), :mod:`.context` (shared state), :mod:`.tokens` and
:mod:`.auth` (identities, roles), :mod:`.errors` (JSON errors), :mod:`.history` (Parquet reads),
:mod:`.live` (push), :mod:`.prom` (gauges), :mod:`.server` (uvicorn in a running loop),
``routers/`` (one per resource).
"""
