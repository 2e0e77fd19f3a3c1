"""``citybrain simulate``: save simulated hours of a city to JSONL, Parquet or CSV, with ground truth."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from citybrain.cli import UserError

FORMATS = ("jsonl", "parquet", "csv")
MAX_HOURS = 24 * 31


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="generate simulated feeds of a city into files (JSONL/Parquet/CSV) plus ground truth",
        description="Run the built-in, seeded simulator for N hours and save every record: traffic detectors and "
        "probes, grid cases, utilities and outages, air/noise/water/weather, incidents and hazard sensors. "
        "By default a few accidents, a pollution episode, a water-main burst and sensor faults are injected per "
        "simulated day; what was injected where is written to ground_truth.json next to the data. "
        "The same arguments always give the same bytes. Replay the folder with `citybrain run --source DIR`.",
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--hours", required=True, type=float, metavar="N", help=f"simulated hours to generate (0 < N <= {MAX_HOURS})")
    p.add_argument("--city", type=Path, metavar="DIR", help="city folder (default: the shipped demo city)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--start", metavar="ISO", help="start time, e.g. 2026-06-01T00:00 (city local time unless an offset "
                   "is given; default Monday 2026-06-01 00:00)")
    p.add_argument("--format", choices=FORMATS, default="jsonl",
                   help="jsonl: one events.jsonl; parquet/csv: one file per record kind (default jsonl)")
    p.add_argument("--step-s", type=int, default=60, help="simulation step in seconds (default 60)")
    p.add_argument("--no-scenarios", action="store_true", help="a clean run: no accidents, episodes, bursts or sensor faults")
    p.add_argument("--bad-fraction", type=float, default=0.0, metavar="F",
                   help="JSONL only: share of malformed lines to mix in (truncated, wrong types, missing fields, unknown "
                   "sensors, out of range, duplicates, late); their counts go to manifest.json")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _start_ms(start: str | None, tz: ZoneInfo) -> int | None:
    if start is None:
        return None
    try:
        t = dt.datetime.fromisoformat(start)
    except ValueError:
        raise UserError(f"--start {start!r} is not an ISO date/time such as 2026-06-01T08:00") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=tz)
    return int(t.timestamp() * 1000)


def _load_city(path: Path | None):
    from brain.city import CityError, demo_city_path, load_city

    try:
        return load_city(path if path is not None else demo_city_path())
    except CityError as exc:
        raise UserError(f"cannot load city: {exc}") from None


class _Writer:
    """Appends batches to the output files of one format."""

    def __init__(self, out: Path, fmt: str):
        self.out, self.fmt = out, fmt
        self.files: dict[str, object] = {}
        self.paths: list[str] = []

    def write_jsonl(self, data: bytes) -> None:
        if "" not in self.files:
            self.files[""] = (self.out / "events.jsonl").open("wb")
            self.paths.append("events.jsonl")
        self.files[""].write(data)

    def write_frames(self, frames) -> None:
        import pyarrow.parquet as pq

        for kind, df in frames.items():
            if kind not in self.files:
                name = f"{kind}.{self.fmt}"
                self.paths.append(name)
                if self.fmt == "parquet":
                    self.files[kind] = pq.ParquetWriter(self.out / name, df.to_arrow().schema)
                else:
                    fh = (self.out / name).open("w", encoding="utf-8", newline="")
                    fh.write(",".join(df.columns) + "\n")
                    self.files[kind] = fh
            if self.fmt == "parquet":
                self.files[kind].write_table(df.to_arrow())
            else:
                df.write_csv(self.files[kind], include_header=False)

    def close(self) -> None:
        for f in self.files.values():
            f.close()


def run(args: argparse.Namespace) -> int:
    if not (0 < args.hours <= MAX_HOURS):
        raise UserError(f"--hours must be in (0, {MAX_HOURS}], got {args.hours}")
    if not 0.0 <= args.bad_fraction < 1.0:
        raise UserError(f"--bad-fraction must be in [0, 1), got {args.bad_fraction}")
    if args.bad_fraction > 0 and args.format != "jsonl":
        raise UserError("--bad-fraction needs --format jsonl (typed Parquet/CSV columns cannot hold malformed records)")
    if args.seed < 0:
        raise UserError(f"--seed must be >= 0, got {args.seed}")
    from citybrain.outputs import output_dir

    output_dir(args.out, "--out")

    from tqdm import tqdm

    from streams.sim import Simulator, to_jsonl
    from streams.sim.corrupt import corrupt

    city = _load_city(args.city)
    tz = ZoneInfo(city.timezone)
    try:
        sim = Simulator(city, seed=args.seed, start_ms=_start_ms(args.start, tz), step_s=args.step_s,
                        scenarios=[] if args.no_scenarios else "default")
    except ValueError as exc:
        raise UserError(str(exc)) from None
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in [*args.out.glob("*.jsonl"), *args.out.glob("*.parquet"), *args.out.glob("*.csv")]:
        stale.unlink()  # a previous run's files would be replayed together with these

    until = sim.start_ms + int(round(args.hours * 3_600_000))
    batch_s = args.step_s * max(1, 3600 // args.step_s)  # hour-sized batches: big frames, fast
    n_batches = -(-(until - sim.start_ms) // (batch_s * 1000))
    counts: dict[str, int] = {}
    bad: dict[str, int] = {}
    writer = _Writer(args.out, args.format)
    t0 = time.perf_counter()
    try:
        with tqdm(total=n_batches, unit="batch", disable=args.quiet, desc="simulating") as bar:
            for batch in sim.batches(until, batch_s=batch_s):
                for k, df in batch.frames.items():
                    counts[k] = counts.get(k, 0) + df.height
                if args.format == "jsonl":
                    data = to_jsonl(batch.frames)
                    if args.bad_fraction > 0 and data:
                        data, c = corrupt(data, args.bad_fraction, seed=args.seed * 1_000_003 + batch.start_ms // 1000,
                                          known_sensor_ids=sim.known_sensor_ids)
                        for k, v in c.items():
                            bad[k] = bad.get(k, 0) + v
                    writer.write_jsonl(data)
                else:
                    writer.write_frames(batch.frames)
                bar.update(1)
                bar.set_postfix(events=sum(counts.values()))
    finally:
        writer.close()
    wall = time.perf_counter() - t0

    (args.out / "ground_truth.json").write_bytes(sim.ground_truth_json() + b"\n")
    total = sum(counts.values())
    manifest = {
        "city": city.name, "seed": args.seed, "start_ms": sim.start_ms, "end_ms": until, "step_s": args.step_s,
        "format": args.format, "files": writer.paths, "scenarios": not args.no_scenarios,
        "events": total, "events_per_kind": counts, "bad_fraction": args.bad_fraction, "corruptions": bad,
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")

    simulated_s = (until - sim.start_ms) / 1000
    print(f"wrote {total:,} events ({simulated_s / 3600:g} simulated h of {city.name}) to {args.out}/ "
          f"[{', '.join(writer.paths)}, ground_truth.json, manifest.json]")
    for k, v in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"  {k:<14} {v:>10,}")
    if bad:
        print(f"  malformed lines mixed in: {sum(bad.values()):,} ({', '.join(f'{k} {v}' for k, v in bad.items() if v)})")
    n_truth = len(sim.ground_truth)
    print(f"ground truth: {n_truth} scenario(s); {wall:.1f} s wall, {total / max(wall, 1e-9):,.0f} events/s, "
          f"{simulated_s / max(wall, 1e-9):,.0f}x real time")
    return 0
