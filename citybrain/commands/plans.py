"""``citybrain plans latest``: the signal timing plans in force, as controllers receive them.

    citybrain plans latest                       # every corridor, from var/run/signal_plans
    citybrain plans latest --corridor jiefang --out DIR
    citybrain plans history --corridor jiefang -n 5
"""
from __future__ import annotations

import json
from pathlib import Path

from citybrain.cli import UserError

DESCRIPTION = """\
Query the timing plans that `citybrain run` published for the city's green-wave corridors
(re-planned live when measured flows shift). Plans are the NTCIP 1202-style pattern / split /
offset JSON with plan id and valid-from, read from the file sink under <out>/signal_plans/.
`latest` prints the plan in force per corridor (a JSON object keyed by corridor id), `history`
the newest plans of one corridor.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("plans", help="query published green-wave timing plans (latest plan per corridor, history)",
                              description=DESCRIPTION)
    sub = p.add_subparsers(dest="plans_command", metavar="{latest,history}")
    sub.required = True
    latest = sub.add_parser("latest", help="the latest published plan per corridor (JSON)", description=DESCRIPTION)
    latest.add_argument("--corridor", metavar="NAME", help="only this corridor (default: every corridor with a plan)")
    latest.add_argument("--out", metavar="DIR", help="the run's output folder (default var/run)")
    latest.set_defaults(func=latest_command)
    hist = sub.add_parser("history", help="the newest published plans of one corridor (JSON list, newest first)",
                          description=DESCRIPTION)
    hist.add_argument("--corridor", metavar="NAME", required=True, help="corridor id")
    hist.add_argument("-n", "--count", type=int, default=10, help="how many plans (default 10)")
    hist.add_argument("--out", metavar="DIR", help="the run's output folder (default var/run)")
    hist.set_defaults(func=history_command)


def _plan_dir(out: str | None) -> Path:
    if out is None:
        from citybrain.settings import load_settings

        out = load_settings(None).out_dir
    directory = Path(out) / "signal_plans"
    if not directory.is_dir():
        raise UserError(f"no published plans under {directory} (run `citybrain run --out {out}` first)")
    return directory


def _sink(directory: Path):
    from streams.sinks.signal_plans import FilePlanSink

    return FilePlanSink(directory)


def _corridors(directory: Path) -> list[str]:
    return sorted(json.loads(f.read_text(encoding="utf-8"))["corridor"] for f in directory.glob("*.latest.json"))


def latest_command(args) -> int:
    directory = _plan_dir(args.out)
    sink = _sink(directory)
    try:
        names = [args.corridor] if args.corridor else _corridors(directory)
        docs = {name: sink.latest(name) for name in names}
    except (OSError, ValueError) as exc:  # ValueError covers unreadable JSON too
        raise UserError(f"cannot read plans in {directory}: {exc}") from None
    if args.corridor and docs[args.corridor] is None:
        have = ", ".join(_corridors(directory)) or "none"
        raise UserError(f"no plan published for corridor {args.corridor!r} in {directory} (corridors with plans: {have})")
    print(json.dumps(docs, indent=2, ensure_ascii=False))
    return 0


def history_command(args) -> int:
    if args.count < 1:
        raise UserError(f"--count must be >= 1, got {args.count}")
    directory = _plan_dir(args.out)
    try:
        docs = _sink(directory).history(args.corridor, args.count)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read plans in {directory}: {exc}") from None
    if not docs:
        have = ", ".join(_corridors(directory)) or "none"
        raise UserError(f"no plan published for corridor {args.corridor!r} in {directory} (corridors with plans: {have})")
    print(json.dumps(docs, indent=2, ensure_ascii=False))
    return 0
