"""What the API's routes share: stores, the city, limits, the live hub (one object on ``app.state.ctx``).

Example:
    >>> ApiLimits(silence_max_h=4, webhook_allowed_hosts="hooks.city.gov.cn, 127.0.0.1").allowed_hosts()
    ['hooks.city.gov.cn', '127.0.0.1']
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import redis.asyncio as aioredis

from brain.city.model import City
from dashboards.api.history import HistoryReader
from dashboards.api.live import LiveHub
from dashboards.api.respcache import ResponseCache
from dashboards.api.tokens import TokenStore
from streams.alerts.store import AlertStore
from streams.sinks.signal_plans import FilePlanSink


class ApiLimits(msgspec.Struct, kw_only=True):
    """Bounds on what callers may change: a silence's longest duration; hosts a webhook may point at."""

    silence_max_h: float = msgspec.field(default=24.0)
    webhook_allowed_hosts: str = ""  # comma-separated host names; empty = no webhook subscriptions via the API
    token_cache_s: float = 1.0  # a verified token is trusted this long in the process (revocation elsewhere: within it)
    history_recheck_s: float = 0.2  # a history table's file listing is trusted this long (new files: seen within it)

    def __post_init__(self) -> None:
        if not self.silence_max_h > 0:
            raise ValueError(f"silence_max_h must be > 0 hours, got {self.silence_max_h}")

    def allowed_hosts(self) -> list[str]:
        return [h.strip().lower() for h in self.webhook_allowed_hosts.split(",") if h.strip()]


@dataclass
class ApiContext:
    """The shared state of one API app (see :func:`dashboards.api.app.create_app`)."""

    store: AlertStore
    city: City
    out_dir: Path
    limits: ApiLimits = field(default_factory=ApiLimits)
    hub: LiveHub = field(default_factory=LiveHub)
    pipeline: object = None  # an in-process engine's pipeline (for /metrics counters), else None
    alerts_cache: tuple | None = None  # (valid until, monotonic s; sorted alerts) shared by list readers
    driver: object = None

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.tokens = TokenStore(self.store.r, cache_s=self.limits.token_cache_s)
        self.history = HistoryReader(self.out_dir / "history", recheck_s=self.limits.history_recheck_s)
        self.responses = ResponseCache()  # encoded answers of hot read routes (dashboards/api/respcache.py)
        self.plans = FilePlanSink(self.out_dir / "signal_plans")

    @classmethod
    def from_url(cls, redis_url: str, city: City, out_dir: str | os.PathLike, max_connections: int = 64,
                 **kw) -> "ApiContext":
        # a bounded pool that makes a burst of requests wait for a connection instead of failing with
        # "Too many connections" (the default pool's answer under load)
        pool = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=max_connections, timeout=10)
        return cls(store=AlertStore(aioredis.Redis(connection_pool=pool)), city=city, out_dir=Path(out_dir), **kw)

    async def close(self) -> None:
        await self.store.close()
