"""``citybrain run`` and ``citybrain replay``: the city brain end to end with the local driver."""
from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from pathlib import Path

from citybrain.cli import UserError
from citybrain.engine import build_engine, parse_duration_s

log = logging.getLogger("citybrain.run")

def _common(p) -> None:
    p.add_argument("--city", metavar="DIR", help="city folder (city.yaml + GeoJSON); default: the shipped demo city")
    p.add_argument("--out", metavar="DIR", help="where history (Parquet), dead letters and the checkpoint go (default var/run)")
    p.add_argument("--config", metavar="FILE", help="settings file (YAML); CITYBRAIN_* environment variables override it")
    p.add_argument("--window", metavar="SECONDS", type=int, help="vital-sign window (tick) in seconds, dividing 3600 (default 300)")
    p.add_argument("--lateness", metavar="SECONDS", type=int, help="allowed lateness before records count as late (default 120)")
    p.add_argument("--fresh", action="store_true", help="ignore and replace an existing checkpoint in --out instead of resuming")
    p.add_argument("--no-alerts", action="store_true", help="do not evaluate alert rules")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on 127.0.0.1:PORT (default off)")
    p.add_argument("--models", metavar="SPECS", help="learned ONNX models to score each hour, e.g. district_iforest:1 (default none); a missing or mismatched model is reported and skipped")
    p.add_argument("--max-rejected-share", type=float, default=0.5, metavar="F",
                   help="warn (and, for replay, exit 3) when more than this share of records is dead-lettered or late (default 0.5)")
    p.add_argument("--models-dir", metavar="DIR", help="where the .onnx files and model cards are (default: the shipped ones)")


def register(sub) -> None:
    p = sub.add_parser(
        "run",
        help="run the city brain: demo city, built-in simulator, live vital signs, alerts",
        description=(
            "Run the city brain with the in-process (local) driver. By default the shipped demo city is fed by the "
            "built-in simulator and a live terminal view shows each district's vital signs (traffic TPI, AQI, noise, "
            "grid cases, utilities, incidents, sensor health, health index) and the firing alerts. Vital-sign history "
            "is appended to Parquet under --out; rejected records go to dead-letter files with their reasons. "
            "State is checkpointed, so running again with the same --out resumes where it stopped. Ctrl-C stops cleanly."
        ),
    )
    _common(p)
    p.add_argument("--source", default="sim", metavar="sim|FILE|MQTT_URL",
                   help="'sim' (default), a recorded JSONL/Parquet/CSV file or folder, or live sensors over MQTT, "
                        "e.g. mqtt://127.0.0.1:1883/city/# (see streams/sources/mqtt.py for the topic layout)")
    p.add_argument("--speed", type=float, help="stream seconds per wall second (default 600; 0 = as fast as possible)")
    p.add_argument("--duration", metavar="SPAN", help="stop after this much stream time, e.g. 6h, 1d (default: run until Ctrl-C)")
    p.add_argument("--seed", type=int, help="simulator seed (default 0)")
    p.add_argument("--start", metavar="ISO", help="simulated start (local time of the city), e.g. 2026-11-16T00:00; default a recent Monday 00:00")
    p.add_argument("--headless", action="store_true", help="no live view: print a JSON summary line every --summary-every of stream time")
    p.add_argument("--summary-every", default="1h", metavar="SPAN", help="headless summary period in stream time (default 1h)")
    from citybrain.commands.serve import add_http_arguments

    add_http_arguments(p)  # the web cockpit and API v1 start with the engine unless --no-http
    from citybrain.commands.controller_hub import add_controller_arguments

    add_controller_arguments(p)  # the signal controllers' hub starts with the engine unless --no-controllers
    p.set_defaults(func=run_command, replay=False)

    r = sub.add_parser(
        "replay",
        help="process a recorded JSONL/Parquet/CSV file as fast as possible",
        description=(
            "Replay a recorded file (or a folder written by `citybrain simulate`) through the same topology, as fast "
            "as possible, with a progress bar; prints the record accounting (in = applied + dead-lettered + late) and "
            "where history and dead letters were written. Exits 3 (with a warning naming the top reasons) when more "
            "than --max-rejected-share of the records were rejected, or none were read."
        ),
    )
    r.add_argument("file", metavar="FILE", help="JSONL, Parquet or CSV file, or a `citybrain simulate` folder")
    r.add_argument("--alerts", action="store_true",
                   help="also evaluate the alert rules and run the alert pipeline with its Redis state, as `run` does "
                        "(fresh state; the records/s then count them)")
    _common(r)
    r.set_defaults(func=replay_command, replay=True, speed=0.0, duration=None, seed=None, start=None, headless=True, source=None, summary_every="1h")


def _out_given(args) -> bool:
    """Did the user choose --out (flag, environment or settings file)?"""
    import os

    import yaml

    if args.out or os.environ.get("CITYBRAIN_OUT_DIR"):
        return True
    if args.config:
        try:
            loaded = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            return False  # load_settings reports the problem
        return isinstance(loaded, dict) and "out_dir" in loaded
    return False


def default_out_dir(source: str | None) -> str:
    """Where a run keeps its state when --out is not given: ``var/run`` for the simulator, and one
    folder per recording (``var/replay/<name>``) so a replay never collides with the live run's
    checkpoint.

    >>> default_out_dir("sim"), default_out_dir("day/events.jsonl"), default_out_dir("day/")
    ('var/run', 'var/replay/day-events', 'var/replay/day')
    >>> default_out_dir("mqtt://127.0.0.1:1883/city/#")
    'var/mqtt'
    """
    if source in (None, "sim"):
        return "var/run"
    if source.startswith("mqtt://"):
        return "var/mqtt"
    path = Path(source)
    parts = [p for p in (path.parent.name, path.stem) if p and p not in (".", "..")]
    return "var/replay/" + "-".join(parts or ["input"])


def _settings(args):
    from citybrain.outputs import output_dir

    settings = _load_settings(args)
    if not _out_given(args):
        settings.out_dir = default_out_dir(args.file if args.replay else getattr(args, "source", None))
    output_dir(settings.out_dir, "--out")
    return settings


def _load_settings(args):
    from citybrain.settings import load_settings

    return load_settings(
        args.config,
        city=args.city,
        out_dir=args.out,
        window_s=args.window,
        allowed_lateness_s=args.lateness,
        speed=getattr(args, "speed", None),
        seed=getattr(args, "seed", None),
        metrics_port=args.metrics_port,
        models=args.models,
        models_dir=args.models_dir,
    )


def rejection_warning(counters, max_share: float) -> str | None:
    """A warning when more than ``max_share`` of the records were rejected (dead-lettered or late),
    naming the top reasons; None when the run looks healthy.

    >>> rejection_warning({"records_in": 10, "dead_lettered": 9, "late": 0, "dead.malformed": 9}, 0.5)
    'warning: 9 of 10 records (90.0 %) were rejected; top reasons: malformed 9 — is this the right file and format?'
    >>> rejection_warning({"records_in": 10, "dead_lettered": 1, "late": 0}, 0.5) is None
    True
    """
    total = int(counters.get("records_in", 0))
    if total == 0:
        return "warning: no records were read — is the source empty, or already fully processed (see --fresh)?"
    rejected = int(counters.get("dead_lettered", 0)) + int(counters.get("late", 0))
    if rejected <= max_share * total:
        return None
    reasons = {k[5:]: int(v) for k, v in counters.items() if k.startswith("dead.") and v}
    if counters.get("late"):
        reasons["late"] = int(counters["late"])
    top = ", ".join(f"{k} {v:,}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])[:3])
    return (f"warning: {rejected:,} of {total:,} records ({100 * rejected / total:.1f} %) were rejected; "
            f"top reasons: {top} — is this the right file and format?")


def _plans_to_redis(pipeline, settings) -> None:
    """Publish timing plans to the engine's Redis too (stream per corridor + latest hash) once it runs."""
    from streams.greenwave_operator import GreenWaveOperator
    from streams.redis_server import running_redis_url
    from streams.sinks.signal_plans import RedisStreamPlanSink

    url = settings.redis_url or running_redis_url(Path(settings.out_dir) / "redis")
    if not url:
        return
    for op in pipeline.window_operators:
        if isinstance(op, GreenWaveOperator):
            op.add_sink(RedisStreamPlanSink(url=url))


def _phase(what: str, t0: float) -> None:
    """One start-up line per phase on stderr, so a slow start is never silent."""
    print(f"citybrain: {what} (+{time.monotonic() - t0:.1f} s)", file=sys.stderr, flush=True)


#: how long the end of a run waits for the subscribers' outboxes to empty
DELIVERY_WAIT_S = 30.0


async def _deliver_before_exit(alerts) -> None:
    """A run ends when its notifications are delivered (or parked after their retries), waiting at
    most ``DELIVERY_WAIT_S`` with progress on stderr; what is still queued is named, with where it waits."""
    shown = [None]

    def progress(queued: int) -> None:
        if queued and shown[0] is None:
            print(f"citybrain: delivering {queued} queued notification(s) before exiting "
                  f"(up to {DELIVERY_WAIT_S:.0f} s) ...", file=sys.stderr, flush=True)
        elif queued:
            print(f"citybrain: {queued} notification(s) still queued ...", file=sys.stderr, flush=True)
        shown[0] = queued

    left = await alerts.drain(DELIVERY_WAIT_S, progress)
    if left:
        where = ", ".join(f"{sid}: {n} in Redis stream {alerts.outbox_key(sid)}" for sid, n in sorted(left.items()))
        print(f"citybrain: warning: {sum(left.values())} notification(s) not delivered yet ({where}); "
              f"they are sent when the engine runs again with the same alert state", file=sys.stderr)
    elif shown[0]:
        print("citybrain: every queued notification delivered", file=sys.stderr)


def _install_signal_handlers(driver) -> None:
    """The first SIGINT/SIGTERM asks the driver for a clean stop. A second one is not swallowed: the
    loop's handlers are removed and the signal re-raised with its default action, so an exit stuck
    waiting on something (the loop's handlers stay installed until ``asyncio.run`` has finished
    shutting down) can always be ended."""
    loop = asyncio.get_running_loop()
    asked: list[int] = []

    def on_signal(sig: int) -> None:
        if asked:
            for s in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(s)
            signal.raise_signal(sig)
            return
        asked.append(sig)
        driver.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, sig)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-main thread
            pass


async def _run_async(args, settings) -> int:
    from dashboards.terminal import LiveView, print_summary, summary_line

    t0 = time.monotonic()
    _phase("loading the city and building the pipeline", t0)
    city, pipeline, driver = build_engine(args, settings)
    _install_signal_handlers(driver)
    alerts = None
    if not args.no_alerts:
        from streams.alert_wiring import maybe_alert_service

        _phase("starting alert state (Redis)" if settings.redis_url else "starting alert state (embedded Redis)", t0)
        try:
            alerts = await maybe_alert_service(city, settings, fresh=bool(args.fresh))
        except ConnectionError as exc:  # Redis unreachable at start: exit 2 with the reason
            raise UserError(str(exc)) from None
        if alerts is not None:
            driver.window_handlers.append(alerts.on_window_result)
            driver.attach("alerts", alerts)  # unapplied alert transactions ride in the checkpoint
        _plans_to_redis(pipeline, settings)
    metrics_runner = None
    if settings.metrics_port:
        from dashboards.metrics import start_metrics_server

        metrics_runner = await start_metrics_server(settings.metrics_host, settings.metrics_port, pipeline, driver, alerts)
    from citybrain.commands.serve import maybe_start_cockpit

    cockpit = await maybe_start_cockpit(args, settings, city, pipeline, driver)
    from citybrain.commands.controller_hub import maybe_start_controllers

    controllers = await maybe_start_controllers(args, settings, city, pipeline)
    _phase(f"{len(city.sensors)} sensors in {len(city.districts)} districts; starting the stream", t0)
    started = time.monotonic()
    summary_ms = int(parse_duration_s(args.summary_every) * 1000)
    next_summary = [None]

    def firing():
        return alerts.firing_for_view() if alerts is not None else []

    if args.headless:

        def on_window(w):
            if next_summary[0] is None:
                next_summary[0] = w.window_end_ms
            if w.window_end_ms >= next_summary[0]:
                print_summary(summary_line(w.window_end_ms, city.timezone, w.vitals, dict(pipeline.counters), firing()))
                next_summary[0] = w.window_end_ms + summary_ms

        driver.window_handlers.append(on_window)
        stats = await driver.run()
    else:
        view = LiveView(city.name, city.timezone)
        last = [0.0]

        def on_window(w):
            now = time.monotonic()
            if now - last[0] >= 0.25:
                last[0] = now
                view.update(w.window_end_ms, w.vitals, dict(pipeline.counters), firing(), settings.speed, now - started)

        driver.window_handlers.append(on_window)
        with view:
            stats = await driver.run()
    if cockpit is not None:  # before the alert service, which may stop the embedded Redis both use
        await cockpit.stop()
    if controllers is not None:
        await controllers.stop()
    if alerts is not None:
        await _deliver_before_exit(alerts)
        await alerts.close()
    if metrics_runner is not None:
        await metrics_runner.cleanup()
    c = pipeline.counters
    print(
        f"stopped at stream time {stats.stream_time_ms}; windows {stats.windows}; records in {c['records_in']:,} = "
        f"applied {c['applied']:,} + dead-lettered {c['dead_lettered']:,} + late {c['late']:,}"
        f" ({'; '.join(pipeline.problems()) or 'ok'}); output in {driver.out_dir}",
        file=sys.stderr,
    )
    warning = rejection_warning(c, args.max_rejected_share)
    if warning:
        print(warning, file=sys.stderr)
    return 0 if pipeline.invariant_holds() else 1


def run_command(args) -> int:
    from citybrain.commands.warmup import ensure_compiled

    settings = _settings(args)
    ensure_compiled()
    return asyncio.run(_run_async(args, settings))


def replay_command(args) -> int:
    from tqdm import tqdm

    from citybrain.commands.warmup import ensure_compiled

    settings = _settings(args)
    settings.speed = 0.0
    ensure_compiled()

    async def go() -> int:
        city, pipeline, driver = build_engine(args, settings)
        _install_signal_handlers(driver)
        size = Path(args.file).stat().st_size if Path(args.file).is_file() else None
        bar = tqdm(total=size, unit="B", unit_scale=True, desc="replay", disable=None)

        def on_batch(result):
            offset = getattr(driver.source, "offset", None)
            if size and offset is not None:
                bar.n = offset
                bar.refresh()
            bar.set_postfix(records=f"{pipeline.counters['records_in']:,}", windows=driver.stats.windows)

        driver.batch_handlers.append(on_batch)
        alerts = None
        if args.alerts and not args.no_alerts:  # off by default: a replay is often a data check
            from streams.alert_wiring import maybe_alert_service

            try:
                alerts = await maybe_alert_service(city, settings, fresh=True)
            except ConnectionError as exc:
                raise UserError(str(exc)) from None
            if alerts is not None:
                driver.window_handlers.append(alerts.on_window_result)
                driver.attach("alerts", alerts)
        started = time.monotonic()
        stats = await driver.run()
        wall = time.monotonic() - started  # the replay itself, not the wait for undelivered notifications
        bar.close()
        alert_line = ""
        if alerts is not None:
            kept = list(alerts.pipeline.state.alerts.values())
            alert_line = (f"\nalerts: {sum(a.status == 'firing' for a in kept):,} firing, "
                          f"{sum(a.status == 'pending' for a in kept):,} pending, {len(kept):,} kept in the alert state")
            await _deliver_before_exit(alerts)
            await alerts.close()
        c = pipeline.counters
        dead = {k[5:]: v for k, v in c.items() if k.startswith("dead.")}
        print(
            f"records in {c['records_in']:,} = applied {c['applied']:,} + dead-lettered {c['dead_lettered']:,} + late {c['late']:,}"
            f" -> {'; '.join(pipeline.problems()) or 'ok'}\n"
            f"dead-letter reasons: {dead or 'none'}\n"
            f"windows closed {stats.windows}; {c['records_in'] / max(wall, 1e-9):,.0f} records/s"
            f" ({'with' if alerts is not None else 'without'} alerting){alert_line}\n"
            f"history: {driver.out_dir / 'history'}; dead letters: {driver.out_dir / 'deadletter'}"
        )
        if not pipeline.invariant_holds():
            return 1
        warning = rejection_warning(c, args.max_rejected_share)
        if warning:
            print(warning, file=sys.stderr)
            return 3
        return 0

    return asyncio.run(go())
