"""``citybrain city check|show``: validate a city folder, summarise it, draw it on a map."""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from brain.city import City, CityError, demo_city_path, load_city
from citybrain.cli import UserError

FAMILIES = ("traffic", "grid", "environment", "emergency")


def register(subparsers: argparse._SubParsersAction) -> None:
    city = subparsers.add_parser(
        "city",
        help="check, summarise or map a city folder (city.yaml + GeoJSON)",
        description="Work with a city folder: city.yaml (districts, streets, grid cells, road segments, "
        "intersections, corridors, hazard sources, sensor registry) plus districts.geojson and cells.geojson.",
    )
    sub = city.add_subparsers(dest="city_command", metavar="ACTION")
    check = sub.add_parser(
        "check",
        help="validate a city folder and list every problem",
        description="Load a city folder and check types, references, physics and geometry. Prints 'ok' and "
        "counts when valid (exit 0); otherwise lists every problem with its file and field path (exit 2).",
    )
    check.add_argument("dir", nargs="?", type=Path, help="city folder (default: the shipped demo city)")
    check.set_defaults(func=run_check)
    show = sub.add_parser(
        "show",
        help="print counts per kind and per district; optionally draw a map",
        description="Summarise a valid city folder: counts per kind and per district, the signalised corridors; "
        "with --map, draw districts, grid cells, road segments, corridors, sensors and hazard sources to a PNG.",
    )
    show.add_argument("dir", nargs="?", type=Path, help="city folder (default: the shipped demo city)")
    show.add_argument("--map", type=Path, metavar="OUT.png", help="also draw the city to this PNG file")
    show.set_defaults(func=run_show)
    init = sub.add_parser(
        "init",
        help="start a city folder of your own from a copy of the demo city",
        description="Copy the shipped demo city (city.yaml, districts.geojson, cells.geojson) into DIR, to edit "
        "into your own city; then `citybrain city check DIR` and `citybrain run --city DIR`.",
    )
    init.add_argument("dir", type=Path, help="new city folder (must not exist, or be empty)")
    init.set_defaults(func=run_init)
    gen = sub.add_parser(
        "generate",
        help="write a synthetic city of any size (for scale benches and load tests)",
        description="Write a valid city folder with exactly --sensors terminals in --districts districts: a road grid "
        "with traffic detectors, grid cells with inspectors, air/noise/water/weather, utilities, case and dispatch "
        "feeds, hazard sources (brain/city/synth.py). The same arguments always give the same files.",
    )
    gen.add_argument("--sensors", type=int, required=True, metavar="N", help="number of sensors (e.g. 50000)")
    gen.add_argument("--districts", type=int, default=8, metavar="D", help="number of districts (1-98, default 8)")
    gen.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    gen.add_argument("--out", type=Path, required=True, metavar="DIR", help="new city folder (must not exist, or be empty)")
    gen.set_defaults(func=run_generate)
    city.set_defaults(func=lambda args: (city.print_help(), 2)[1])


def run_generate(args: argparse.Namespace) -> int:
    import time

    from brain.city.synth import SynthError, write
    from citybrain.outputs import output_dir

    target: Path = args.out
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(f"{target} exists and is not an empty folder; choose a new one")
    output_dir(target, "--out")
    started = time.monotonic()
    try:
        counted = write(target, args.sensors, args.districts, args.seed)
    except SynthError as exc:
        raise UserError(str(exc)) from None
    summary = ", ".join(f"{v} {k}" for k, v in counted.items() if v)
    print(f"generated {target} in {time.monotonic() - started:.1f} s: {summary}; check it with `citybrain city check {target}`")
    return 0


def run_init(args: argparse.Namespace) -> int:
    import shutil

    target: Path = args.dir
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(f"{target} exists and is not an empty folder; choose a new one")
    from citybrain.outputs import output_dir

    output_dir(target, "city init")
    source = demo_city_path()
    copied = []
    for f in sorted(source.iterdir()):
        if f.is_file() and f.suffix in (".yaml", ".yml", ".geojson", ".json", ".md"):
            shutil.copy2(f, target / f.name)
            copied.append(f.name)
    print(f"demo city copied to {target} ({', '.join(copied)}); check it with `citybrain city check {target}`")
    return 0


def _folder(args: argparse.Namespace) -> Path:
    return args.dir if args.dir is not None else demo_city_path()


def counts(city: City) -> dict[str, int]:
    """Number of items of each kind in the city."""
    return {
        "districts": len(city.districts),
        "streets": len(city.streets),
        "cells": len(city.cells),
        "segments": len(city.segments),
        "intersections": len(city.intersections),
        "corridors": len(city.corridors),
        "hazards": len(city.hazards),
        "sensors": len(city.sensors),
    }


def run_check(args: argparse.Namespace) -> int:
    folder = _folder(args)
    try:
        city = load_city(folder)
    except CityError as exc:
        n = len(exc.problems)
        print(f"{folder}: {n} problem{'s' if n != 1 else ''}")
        for p in exc.problems:
            print(f"  {p}")
        return 2
    summary = ", ".join(f"{v} {k}" for k, v in counts(city).items())
    print(f"ok: {folder}: {city.name}: {summary}")
    return 0


def _load(folder: Path) -> City:
    try:
        return load_city(folder)
    except CityError as exc:
        raise UserError(f"{exc}\n(run `citybrain city check {folder}` for the same list)") from None


def run_show(args: argparse.Namespace) -> int:
    folder = _folder(args)
    if args.map is not None:
        from citybrain.outputs import output_file

        output_file(args.map, "--map")
    city = _load(folder)
    print(render_summary(city))
    if args.map is not None:
        draw_map(city, args.map)
        print(f"map written to {args.map}")
    return 0


def render_summary(city: City) -> str:
    """A plain-text summary: header, a per-district table, the corridors."""
    cols = ["streets", "cells", "segments", "intersections", "hazards", *FAMILIES, "sensors"]
    per: dict[str, Counter] = {d.id: Counter() for d in city.districts}
    for kind in ("streets", "cells", "segments", "intersections", "hazards"):
        for item in getattr(city, kind):
            per[item.district][kind] += 1
    for s in city.sensors:
        per[s.district][s.family] += 1
        per[s.district]["sensors"] += 1
    total = sum(per.values(), Counter())
    names = {d.id: f"{d.id} ({d.admin_code})" for d in city.districts}
    width = max(len("district"), *(len(v) for v in names.values()))
    lines = [
        f"{city.name} ({city.admin_code}, {city.timezone}), centre [{city.center[0]}, {city.center[1]}]",
        "",
        "district".ljust(width) + "".join(f"{c:>{max(len(c), 5) + 2}}" for c in cols),
    ]
    rows = [(names[d], per[d]) for d in per] + [("total", total)]
    for label, cnt in rows:
        if label == "total":
            lines.append("-" * len(lines[-1]))
        lines.append(label.ljust(width) + "".join(f"{cnt[c]:>{max(len(c), 5) + 2}}" for c in cols))
    by_type = Counter(s.type for s in city.sensors)
    lines += ["", "sensors by type: " + ", ".join(f"{t} {n}" for t, n in sorted(by_type.items()))]
    by_class = Counter(s.road_class for s in city.segments)
    km = sum(s.length_m for s in city.segments) / 1000
    lines.append("segments by class: " + ", ".join(f"{c} {n}" for c, n in sorted(by_class.items())) + f" ({km:.1f} km directed)")
    lines.append("corridors:")
    for c in city.corridors:
        lines.append(f"  {c.id} ({c.name}): {len(c.intersections)} intersections over {c.positions_m[-1]:.0f} m, "
                     f"{c.speed_out_kmh:g}/{c.speed_in_kmh:g} km/h out/in, cycle {c.cycle_min_s:g}-{c.cycle_max_s:g} s")
    return "\n".join(lines)


FAMILY_COLORS = {"traffic": "#1f77b4", "grid": "#2ca02c", "environment": "#9467bd", "emergency": "#d62728"}
ROAD_STYLE = {"expressway": ("#c0392b", 3.0), "arterial": ("#e67e22", 1.8), "secondary": ("#7f8c8d", 1.0)}


def draw_map(city: City, out: Path) -> None:
    """Draw districts, cells, segments, corridors, sensors and hazard sources to a PNG."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(11, 10))
    palette = plt.get_cmap("Pastel1")
    for k, d in enumerate(city.districts):
        for ring in city.district_polygons.get(d.id, []):
            xs, ys = zip(*ring)
            ax.fill(xs, ys, color=palette(k % 9), alpha=0.6, zorder=0)
            ax.plot(xs, ys, color="#333333", lw=1.5, zorder=1)
        # District names may be CJK, which default fonts lack: label with the name's ASCII part or the id.
        label = "".join(ch for ch in d.name if ch.isascii()).strip() or d.id
        ax.text(d.center[0], d.center[1], f"{label}\n{d.admin_code}", ha="center", va="center", fontsize=12,
                weight="bold", alpha=0.45, zorder=6)
    for c in city.cells:
        for ring in city.cell_polygons.get(c.id, []):
            xs, ys = zip(*ring)
            ax.plot(xs, ys, color="#999999", lw=0.4, ls="--", zorder=1)
    for s in city.segments:
        color, lw = ROAD_STYLE.get(s.road_class, ("#7f8c8d", 1.0))
        xs, ys = zip(*s.line)
        ax.plot(xs, ys, color=color, lw=lw, solid_capstyle="round", zorder=2)
    for c in city.corridors:
        pts = [city.intersection(i) for i in c.intersections]
        ax.plot([p.lon for p in pts], [p.lat for p in pts], color="#00a0a0", lw=5, alpha=0.35, zorder=3)
        ax.annotate(f"{c.name} ({len(pts)})", (pts[-1].lon, pts[-1].lat), textcoords="offset points", xytext=(6, 6),
                    fontsize=9, color="#006666", zorder=7)
    ax.scatter([x.lon for x in city.intersections], [x.lat for x in city.intersections], s=22, marker="s",
               facecolor="white", edgecolor="black", zorder=4)
    for fam in FAMILIES:
        pts = [(s.lon, s.lat) for s in city.sensors if s.family == fam]
        if pts:
            xs, ys = zip(*pts)
            ax.scatter(xs, ys, s=6, color=FAMILY_COLORS[fam], alpha=0.8, zorder=5)
    if city.hazards:
        ax.scatter([h.lon for h in city.hazards], [h.lat for h in city.hazards], s=120, marker="^", color="#ff0000",
                   edgecolor="black", zorder=6)
    legend = [Line2D([], [], color=c, lw=w, label=k) for k, (c, w) in ROAD_STYLE.items()]
    legend += [Line2D([], [], color="#00a0a0", lw=5, alpha=0.35, label="signalised corridor"),
               Line2D([], [], marker="s", ls="", mfc="white", mec="black", label="intersection")]
    legend += [Line2D([], [], marker="o", ls="", color=FAMILY_COLORS[f], ms=4,
                      label=f"{f} sensors ({sum(s.family == f for s in city.sensors)})") for f in FAMILIES]
    legend.append(Line2D([], [], marker="^", ls="", color="#ff0000", mec="black", ms=9, label="hazard source"))
    ax.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, framealpha=0.9)
    ax.set_aspect(1 / math.cos(math.radians(city.center[1])))  # metres the same both ways
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(f"{city.name} ({city.admin_code}): {len(city.segments)} segments, {len(city.sensors)} sensors")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(out, dpi=110, bbox_inches="tight")
    except OSError as exc:
        raise UserError(f"cannot write map {out}: {exc}") from None
    finally:
        plt.close(fig)
