"""``citybrain warm-up``: compile every numba kernel once (the bootstrap runs it after installing), and
the same phases, with a progress bar, when ``run`` or ``replay`` find the compiled code missing."""
from __future__ import annotations

import asyncio
import sys
import tempfile
import time

FIRST_START_S = 150  # measured on a 2-core machine with a cold cache (README, "First start")


def register(sub) -> None:
    p = sub.add_parser(
        "warm-up",
        help="compile the numba kernels now, so the first start is fast (the install runs it)",
        description=(
            "Compile every numba kernel of the engine and keep the machine code in numba's cache beside the "
            "package, then run one simulated hour of the demo city end to end (no alerts, no files kept) so "
            "every kernel is compiled with the types a run uses. Takes a few minutes once; afterwards it takes "
            "seconds. scripts/bootstrap.sh (make run, make test) runs it after installing."
        ),
    )
    p.add_argument("--quick", action="store_true", help="compile the kernels only; skip the simulated hour")
    p.set_defaults(func=warm_up_command)


def compile_kernels(reason: str | None = None) -> float:
    """Run the warm-up phases with a progress bar on stderr; returns seconds taken."""
    from tqdm import tqdm

    from brain.warmup import forget_stale, mark_cached, phases

    t0 = time.monotonic()
    forget_stale()
    if reason:
        print(reason, file=sys.stderr, flush=True)
    steps = phases()
    with tqdm(total=len(steps), unit="step", desc="compiling", file=sys.stderr, disable=False,
              bar_format="{desc}: {n_fmt}/{total_fmt} {bar} {elapsed} {postfix}") as bar:
        for label, fn in steps:
            bar.set_postfix_str(label)
            fn()
            bar.update(1)
    mark_cached()
    return time.monotonic() - t0


def ensure_compiled() -> None:
    """Called before a run starts: says so and shows progress when the compiled kernels are missing."""
    from brain.warmup import kernels_cached

    if not kernels_cached():
        compile_kernels(f"compiling kernels (first start only, ~{FIRST_START_S} s; `citybrain warm-up` does it ahead)")


def _simulated_hour(out_dir: str) -> int:
    from citybrain.cli import build_parser
    from citybrain.commands.run import _settings
    from citybrain.engine import build_engine

    args = build_parser().parse_args(["run", "--headless", "--speed", "0", "--duration", "1h", "--no-alerts",
                                      "--out", out_dir, "--fresh"])
    settings = _settings(args)
    _, _, driver = build_engine(args, settings)
    stats = asyncio.run(driver.run())
    return stats.windows


def warm_up_command(args) -> int:
    t0 = time.monotonic()
    compile_kernels("compiling the numba kernels")
    if not args.quick:
        print("running one simulated hour end to end (compiles what a run calls with its own types)", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="citybrain-warmup-") as tmp:
            windows = _simulated_hour(tmp)
        print(f"simulated hour done ({windows} windows)", file=sys.stderr)
    print(f"kernels compiled and cached in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return 0
