"""``citybrain rules check|list|schema``: validate alert rule packs before (or while) the engine runs them."""
from __future__ import annotations

import json
import sys

from citybrain.cli import UserError


def register(sub) -> None:
    p = sub.add_parser("rules", help="check, list or describe alert rule packs (rules/*.yaml)",
                       description="Alert rule packs are YAML files validated against a typed schema. "
                                   "The running engine reloads them when they change, keeping the old rules if the new "
                                   "ones do not validate; check them here first.")
    rsub = p.add_subparsers(dest="rules_command", metavar="ACTION")
    chk = rsub.add_parser("check", help="validate rule packs (default: the shipped ones); exit 1 on any problem",
                          description="Parse and validate every pack (schema, durations, severities, SQL expressions, "
                                      "unique ids, composite references, inhibit matchers). With --against-vitals, also "
                                      "check that every table and column a rule reads exists in the vital signs computed "
                                      "for the city.")
    chk.add_argument("paths", nargs="*", help="rule pack files or folders (default: the shipped packs)")
    chk.add_argument("--against-vitals", action="store_true",
                     help="also check tables/columns against compute_vitals output for the city")
    chk.add_argument("--city", metavar="DIR", help="city folder for --against-vitals (default: the demo city)")
    chk.set_defaults(func=cmd_check)
    ls = rsub.add_parser("list", help="list the rules of the packs (default: the shipped ones)")
    ls.add_argument("paths", nargs="*")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
    sc = rsub.add_parser("schema", help="print the JSON Schema of a rule pack")
    sc.set_defaults(func=cmd_schema)
    from citybrain.commands.rules_reload import add_reload_parser

    add_reload_parser(rsub)  # a client of the running engine's API (admin token)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _load(paths):
    from brain.alerts.rules import RuleError, check_packs, default_rules_dir, load_rule_packs

    packs, problems = [], []
    for path in paths or [default_rules_dir()]:
        try:
            packs += load_rule_packs(path)
        except RuleError as exc:
            problems.append(str(exc))
    if not problems:
        try:
            check_packs(packs)
        except RuleError as exc:
            problems.append(str(exc))
    return packs, problems


def cmd_check(args) -> int:
    packs, problems = _load(args.paths)
    if args.against_vitals and not problems:
        problems += _against_vitals(packs, args.city)
    for p in problems:
        print(f"problem: {p}", file=sys.stderr)
    n = sum(len(p.rules) for p in packs)
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"ok: {len(packs)} pack(s), {n} rule(s), {sum(len(p.inhibit) for p in packs)} inhibit rule(s), "
          f"{sum(len(p.correlate) for p in packs)} correlate rule(s)")
    return 0


def _against_vitals(packs, city_dir) -> list[str]:
    from brain.alerts.rules import rule_columns
    from brain.city import CityError, demo_city_path, load_city
    from brain.alerts.enrich import driver_table_columns

    try:
        city = load_city(city_dir or demo_city_path())
    except (CityError, OSError) as exc:
        raise UserError(f"cannot load city: {exc}") from None
    available = driver_table_columns(city)
    out = []
    for pack in packs:
        for rule in pack.rules:
            for table, cols in rule_columns(rule).items():
                if table not in available:
                    out.append(f"{pack.source_file}: rule {rule.id!r} reads unknown table {table!r}")
                elif cols - available[table]:
                    out.append(f"{pack.source_file}: rule {rule.id!r}: table {table!r} has no column(s) "
                               f"{sorted(cols - available[table])}")
    return out


def cmd_list(args) -> int:
    from brain.alerts.model import severity_colour
    from brain.alerts.rules import rule_columns

    packs, problems = _load(args.paths)
    if problems:
        raise UserError("; ".join(problems))
    rows = []
    for p in packs:
        for r in p.rules:
            tables = rule_columns(r)
            rows.append({"pack": p.pack, "id": r.id, "kind": r.kind, "severity": severity_colour(r._level),
                         "reads": "; ".join(f"{t}({', '.join(sorted(c))})" for t, c in tables.items()),
                         "for": r.for_, "enabled": r.enabled})
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1, default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(header_style="bold")
    for c in ("pack", "id", "kind", "severity", "for", "reads"):
        t.add_column(c)
    for r in rows:
        t.add_row(*[str(r[c]) for c in ("pack", "id", "kind", "severity", "for", "reads")])
    Console().print(t)
    return 0


def cmd_schema(args) -> int:
    from brain.alerts.rules import rule_schema

    print(json.dumps(rule_schema(), indent=1, ensure_ascii=False))
    return 0
