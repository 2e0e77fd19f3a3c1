"""The command line and the city the lifecycle-table benches share (``bench/vitals_cases.py``,
``bench/vitals_live.py``): rows kept, repeats, rows per update, a city folder or a generated
50k-sensor city, and a random seed printed so a run can be repeated."""
from __future__ import annotations

import argparse
import random
import tempfile

import numpy as np

from brain.city import load_city


def parse(description: str, kept: list[int], repeat: int) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kept", type=int, nargs="+", default=kept)
    ap.add_argument("--repeat", type=int, default=repeat)
    ap.add_argument("--rows", type=int, default=14)
    ap.add_argument("--city", default=None, help="a city folder (default: a generated 50k-sensor city, 4096 cells)")
    ap.add_argument("--seed", type=int, default=None)
    return ap.parse_args()


def city_and_rng(args: argparse.Namespace, prefix: str):
    """(seed, its generator, the city): ``--city`` or a 50k-sensor city generated from the seed."""
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    rng = np.random.default_rng(seed)
    if args.city:
        return seed, rng, load_city(args.city)
    from brain.city.synth import write

    tmp = tempfile.mkdtemp(prefix=prefix)
    write(tmp, 50_000, 16, seed % 1000)
    return seed, rng, load_city(tmp)
