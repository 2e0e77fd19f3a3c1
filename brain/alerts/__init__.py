"""The alert pipeline (pure, I/O-free): rules → fingerprint/dedup → lifecycle → inhibition → silences
→ escalation → grouping/routing → notifications, plus CAP 1.2 and Smart Data Models encoders.

Delivery, Redis state and the running service live in :mod:`streams.alerts`.
"""
