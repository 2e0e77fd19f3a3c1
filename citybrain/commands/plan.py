"""``citybrain plan``: a green-wave timing plan for one corridor, printed as JSON.

    citybrain plan --corridor jiefang                 # a corridor of the city (demo city by default)
    citybrain plan --corridor-json corridor.json      # a self-contained corridor (docs/greenwave.md)
    citybrain plan --corridor-json c.json --ntcip --diagram wave.png
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from citybrain.cli import UserError

DESCRIPTION = """\
Compute a green-wave (绿波带) timing plan for a signalised corridor: the common cycle
(Webster, within the corridor's bounds, unless fixed), splits from critical flow ratios, and
offsets chosen by a platoon delay model (dispersion, queue discharge, side-street traffic) starting
from the MAXBAND optimum, within absolute safety limits (yellow >= 3 s, all-red >= 1 s, cycle 30-180 s).
Prints the plan as JSON (or the NTCIP 1202-style controller form with --ntcip); --diagram draws
the time-space diagram with the bands. The corridor JSON format is documented in docs/greenwave.md.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("plan", help="green-wave timing plan for a corridor (JSON, optional time-space diagram)",
                              description=DESCRIPTION)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--corridor", metavar="NAME", help="corridor id or name in the city")
    src.add_argument("--corridor-json", metavar="FILE", help="self-contained corridor JSON file ('-' for stdin)")
    p.add_argument("--city", metavar="DIR", help="city folder for --corridor (default: the shipped demo city)")
    p.add_argument("--ntcip", action="store_true", help="print the NTCIP 1202-style pattern/split/offset JSON sent to controllers")
    p.add_argument("--diagram", metavar="OUT", help="write the time-space diagram with the bands (.png or .svg)")
    p.add_argument("--cycles", type=int, default=3, help="cycles shown in the diagram (default 3)")
    p.set_defaults(func=run)


def load_spec(args):
    from brain.greenwave.model import CorridorSpec, corridor_from_city

    if args.corridor_json:
        try:
            data = sys.stdin.buffer.read() if args.corridor_json == "-" else Path(args.corridor_json).read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read corridor file {args.corridor_json}: {exc.strerror}") from None
        try:
            return CorridorSpec.from_json(data)
        except ValueError as exc:
            raise UserError(f"{args.corridor_json}: {exc}") from None
    from brain.city import demo_city_path, load_city

    try:
        city = load_city(args.city or demo_city_path())
    except Exception as exc:  # the loader's own error type carries a readable message
        raise UserError(f"cannot load city: {exc}") from None
    try:
        return corridor_from_city(city, args.corridor)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def run(args) -> int:
    from brain.greenwave.optimizer import optimize_corridor
    from brain.greenwave.plan import to_ntcip

    spec = load_spec(args)
    if args.diagram and Path(args.diagram).suffix.lower() not in (".png", ".svg"):
        raise UserError(f"--diagram must end in .png or .svg, got {args.diagram}")
    if args.diagram:
        from citybrain.outputs import output_file

        output_file(args.diagram, "--diagram")
    try:
        plan = optimize_corridor(spec)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    out = to_ntcip(plan) if args.ntcip else plan.to_dict()
    print(json.dumps(out, indent=2, ensure_ascii=False))
    if args.diagram:
        draw_time_space(spec, plan, args.diagram, cycles=max(1, args.cycles))
        print(f"diagram written to {args.diagram}", file=sys.stderr)
    return 0


def draw_time_space(spec, plan, path: str, cycles: int = 3) -> None:
    """Time-space diagram: per intersection the coordinated greens, and both progression bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    C = plan.cycle_s
    x = spec.positions_m()
    t_out = spec.travel_out_s()
    t_in = spec.travel_in_s()
    horizon = cycles * C
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.55 * spec.n))
    bar = max(8.0, 0.012 * (x[-1] - x[0]))
    for it, xi in zip(plan.intersections, x):
        ax.broken_barh([(0, horizon)], (xi - bar / 2, bar), color="#d62728", alpha=0.55)
        for k, ph in enumerate(it.phases):
            if not ph.coordinated:
                continue
            start = it.offset_s + it.phase_start_s(k)
            color = "#2ca02c"
            for j in range(-2, cycles + 2):
                s = start + j * C
                y0 = xi - bar / 2 if ph.coordinated != "in" else xi
                h = bar if ph.coordinated == "both" else bar / 2
                ax.broken_barh([(s, ph.green_s)], (y0, h), color=color)
                ax.broken_barh([(s + ph.green_s, ph.yellow_s)], (y0, h), color="#ffbf00")
    for j in range(-2, cycles + 2):
        if plan.band_out_s > 0:
            s = plan.band_out_start_s + j * C
            ax.fill(np.concatenate([s + t_out, (s + plan.band_out_s + t_out)[::-1]]),
                    np.concatenate([x, x[::-1]]), color="#1f77b4", alpha=0.25, lw=0,
                    label="outbound band" if j == 0 else None)
        if plan.band_in_s > 0:
            s = plan.band_in_start_s + j * C
            ax.fill(np.concatenate([s + t_in, (s + plan.band_in_s + t_in)[::-1]]),
                    np.concatenate([x, x[::-1]]), color="#9467bd", alpha=0.25, lw=0,
                    label="inbound band" if j == 0 else None)
    ax.set_xlim(0, horizon)
    ax.set_ylim(x[0] - 2 * bar, x[-1] + 2 * bar)
    ax.set_yticks(x, [f"{it.id} ({xi:.0f} m)" for it, xi in zip(plan.intersections, x)])
    ax.set_xlabel("time (s)")
    ax.set_title(f"{plan.corridor}: cycle {C:.0f} s, bands out {plan.band_out_s:.1f} s / in {plan.band_in_s:.1f} s")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
