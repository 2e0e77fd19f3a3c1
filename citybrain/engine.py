"""The engine that ``citybrain run`` and ``replay`` drive: city, pipeline with its window operators,
source and local driver, built from the command's arguments and settings (also used by ``warm-up``,
tests and benches).

Example:
    >>> parse_duration_s("30m")
    1800.0
"""
from __future__ import annotations

import logging
import re
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from citybrain.cli import UserError

log = logging.getLogger("citybrain.run")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration_s(text: str) -> float:
    """'90s', '30m', '6h', '2d', '1w' (or plain seconds) -> seconds.

    >>> parse_duration_s("6h"), parse_duration_s("90")
    (21600.0, 90.0)
    """
    m = _DURATION.match(text or "")
    if not m:
        raise UserError(f"cannot read duration {text!r}: use a number with s, m, h, d or w (e.g. 6h)")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def _load_city(path: str | None):
    from brain.city import CityError, demo_city_path, load_city

    try:
        return load_city(path or demo_city_path())
    except CityError as exc:
        raise UserError(str(exc)) from None


def _start_ms(text: str | None, tz: str) -> int | None:
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"--start {text!r} is not an ISO date/time such as 2026-11-16T00:00") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ZoneInfo(tz))
    return int(dt.timestamp() * 1000)


def build_engine(args, settings):
    """City, pipeline, source and driver for ``run``/``replay`` (shared by tests and benches)."""
    from brain.pipeline import CityPipeline, PipelineConfig
    from streams.feeds import SimulatorSource, open_file_source
    from streams.local import LocalDriver

    city = _load_city(settings.city)
    try:
        config = PipelineConfig(window_s=settings.window_s, allowed_lateness_s=settings.allowed_lateness_s, max_ahead_s=settings.max_ahead_s)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    operators = []
    from streams.anomaly_operator import maybe_anomaly_operator

    anomaly = maybe_anomaly_operator(city, config)
    if anomaly is not None:
        from streams.anomaly_store import BaseStore

        # Checkpoints hold what changed since a whole state kept in a file of its own under --out
        # (50k sensors: ~24 MB per checkpoint after a tick instead of ~230 MB, 15x less CPU).
        operators.append(anomaly.keep_bases_in(BaseStore(Path(settings.out_dir) / "anomaly-bases")))
    from streams.anomaly_operator import ModelOperator, parse_model_specs

    specs = parse_model_specs(settings.models)
    if specs:
        learned = ModelOperator(city, specs, settings.models_dir)
        for error in learned.errors:
            # Not fatal: the numba detectors keep scoring; the operator says what it could not use.
            print(f"citybrain: warning: {error}; continuing without it", file=sys.stderr)
            log.warning("model not loaded", extra={"fields": {"error": error}})
        if learned.models:
            operators.append(learned)
    from streams.greenwave_operator import maybe_greenwave_operator

    try:  # live green waves: plans to <out>/signal_plans/ (the Redis stream sink is not wired here yet)
        greenwave = maybe_greenwave_operator(city, settings.out_dir, fresh=bool(getattr(args, "fresh", False)))
    except ValueError as exc:
        raise UserError(f"green-wave corridors: {exc}") from None
    if greenwave is not None:
        operators.append(greenwave)
    from streams.fault_operator import fault_operator

    faults = fault_operator(city)  # sensor faults from the first hour (rules/sensor_faults.yaml)
    operators.append(faults)
    from streams.cockpit_tables import CockpitTables

    operators.append(CockpitTables(city))  # grid cases by responsible unit, per-sensor freshness (the cockpit's)
    from streams.controllers.centre import ControllerProblems

    operators.append(ControllerProblems(city))  # the controller hub's problems (empty until the hub starts)
    pipeline = CityPipeline(city, config, window_operators=operators)
    source_arg = args.file if args.replay else args.source
    if isinstance(source_arg, str) and source_arg.startswith("mqtt://"):
        from streams.sources.mqtt import MqttSource

        if args.replay:
            raise UserError("replay reads a recording to its end; for live sensors over MQTT use `citybrain run --source mqtt://...`")

        try:
            source = MqttSource(source_arg, session_scope=str(Path(settings.out_dir).resolve()))
        except ValueError as exc:
            raise UserError(f"--source: {exc}") from None
        settings.speed = 0.0  # live input arrives at its own pace
        key = f"mqtt:{source.url.host}:{source.url.port}/{source.url.topic_filter}"
    elif source_arg in (None, "sim"):
        source = SimulatorSource(city, seed=settings.seed, start_ms=_start_ms(args.start, city.timezone))
        key = f"sim:{city.name}:{settings.seed}:{source.start_ms}"
    else:
        path = Path(source_arg)
        if not path.exists():
            raise UserError(f"source {path} does not exist (use 'sim' or a JSONL/Parquet/CSV file or folder)")
        try:
            # --duration stops between batches: small ones, so it stops within minutes of the span.
            source = open_file_source(path, fine=bool(getattr(args, "duration", None)))
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read {path}: {exc}") from None
        key = f"file:{path.resolve()}"
    out = Path(settings.out_dir)
    until_ms = duration_ms = None
    if getattr(args, "duration", None):
        duration_ms = int(parse_duration_s(args.duration) * 1000)
        base = getattr(source, "start_ms", None)
        # The simulator knows its start; a recording's stream time starts at its first window.
        until_ms = (base + duration_ms) if base is not None else None
    driver = LocalDriver(pipeline, source, out, speed=settings.speed, until_ms=until_ms, duration_ms=duration_ms,
                         checkpoint_every_s=settings.checkpoint_every_s, source_key=key)
    # readings outside a sensor's valid range are dead letters, and spike evidence for the fault operator
    driver.batch_handlers.append(lambda result: faults.observe_rejected(result.dead))
    if args.fresh:
        driver.checkpoints.remove()  # the latest and the previous one
    try:
        driver.resume()
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if driver.resumed and until_ms is not None and getattr(source, "start_ms", None) is not None:
        pass  # --duration counts from the simulator's original start, so a resumed run stops at the same point
    return city, pipeline, driver
