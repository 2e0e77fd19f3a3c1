"""What alerting costs a replay: ``citybrain replay`` of one simulated recording without alerting, with
``--alerts`` (the compiled rule plan), and with ``--alerts`` on the previous rule engine
(``brain/alerts/rules.py`` at ``--before``, read from git and swapped into the alert service), each as
its own process, in turns. Prints records/s (wall) and CPU seconds (user + sys of the child), and the
ratios against the replay without alerting measured in the same run.

Run: ``.venv/bin/python bench/replay_alerts.py [--hours 6] [--seed N] [--rounds 2]``
"""
from __future__ import annotations

import argparse
import random
import re
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

PREVIOUS = """
import sys
sys.path.insert(0, {bench!r})
import alert_speed
old = alert_speed.previous_rules_module({rev!r})
import streams.alerts.service as svc
svc.RuleEngine, svc.load_rule_packs, svc.RuleError = old.RuleEngine, old.load_rule_packs, old.RuleError
from citybrain.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def child(cmd: list[str]) -> tuple[float, float, str]:
    """(records/s printed, CPU seconds of the child, its stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=3600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    rate = float(re.search(r"([\d,]+) records/s", p.stdout).group(1).replace(",", ""))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return rate, cpu, p.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--before", default="8f9178a", help="git revision of the previous rule engine")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    tmp = Path(tempfile.mkdtemp())
    sim = tmp / "sim"
    subprocess.run([PY, "-m", "citybrain", "simulate", "--out", str(sim), "--hours", str(args.hours), "--seed", str(seed),
                    "--start", "2026-06-01T06:00", "--quiet"], check=True, cwd=ROOT, capture_output=True)
    prev = tmp / "previous.py"
    prev.write_text(PREVIOUS.format(bench=str(ROOT / "bench"), rev=args.before))
    runs = {"without alerting": [PY, "-m", "citybrain", "replay", str(sim)],
            "--alerts (compiled rules)": [PY, "-m", "citybrain", "replay", str(sim), "--alerts"],
            f"--alerts (rules at {args.before})": [PY, str(prev), "replay", str(sim), "--alerts"]}
    got: dict[str, list[tuple[float, float]]] = {k: [] for k in runs}
    child([*runs["without alerting"], "--out", str(tmp / "warm")])  # numba's cache, the simulator's files
    for r in range(args.rounds):
        for name, cmd in (runs.items() if r % 2 == 0 else reversed(list(runs.items()))):
            rate, cpu, out = child([*cmd, "--out", str(tmp / f"{r}-{len(got[name])}-{abs(hash(name))}")])
            got[name].append((rate, cpu))
            alerts = re.search(r"alerts: .*", out)
            print(f"  round {r + 1}: {name:<28} {rate:>9,.0f} records/s  {cpu:6.2f} s CPU  {alerts.group(0) if alerts else ''}",
                  flush=True)
    base_rate = sum(x for x, _ in got["without alerting"]) / args.rounds
    base_cpu = sum(c for _, c in got["without alerting"]) / args.rounds
    print(f"replay of {args.hours:g} simulated hours of the demo city (seed {seed}), mean of {args.rounds} rounds:")
    for name, xs in got.items():
        rate = sum(x for x, _ in xs) / len(xs)
        cpu = sum(c for _, c in xs) / len(xs)
        print(f"  {name:<28} {rate:>9,.0f} records/s ({rate / base_rate:.2f}x)  {cpu:6.2f} s CPU ({cpu / base_cpu:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
