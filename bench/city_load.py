"""Loading a generated city of N sensors: the fast city.yaml reader against PyYAML (libyaml) in the same run.

    .venv/bin/python bench/city_load.py                 # 50k sensors, 16 districts, a random seed
    .venv/bin/python bench/city_load.py --sensors 5000 --districts 4 --repeat 3

Prints wall and CPU seconds of `load_city` (read + parse + every check) with each parser, their ratio,
and the parse alone. Wall time moves with the machine's load; CPU seconds are what the loader costs.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brain.city import flowyaml, load_city  # noqa: E402
from brain.city import loader as city_loader  # noqa: E402
from brain.city.synth import write  # noqa: E402


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sensors", type=int, default=50_000)
    ap.add_argument("--districts", type=int, default=16)
    ap.add_argument("--seed", type=int, default=None, help="default: random")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    folder = Path(tempfile.mkdtemp(prefix="city-load-"))
    _, gen_wall, gen_cpu = _timed(lambda: write(folder, args.sensors, args.districts, seed))
    size_mb = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
    print(f"city: {args.sensors:,} sensors, {args.districts} districts, seed {seed}; {size_mb:.1f} MB; generated in "
          f"{gen_wall:.1f} s wall / {gen_cpu:.1f} s CPU")
    text = (folder / "city.yaml").read_text(encoding="utf-8")
    real_parse = flowyaml.parse
    results = {"flowyaml": [], "pyyaml": []}
    for _ in range(args.repeat):
        for name in ("pyyaml", "flowyaml"):  # the peer first: no warm-cache advantage for ours
            city_loader.flowyaml.parse = real_parse if name == "flowyaml" else (lambda _text: flowyaml.OUTSIDE)
            try:
                city, wall, cpu = _timed(lambda: load_city(folder))
            finally:
                city_loader.flowyaml.parse = real_parse
            assert len(city.sensors) == args.sensors
            results[name].append((wall, cpu))
    import yaml

    _, p_wall, p_cpu = _timed(lambda: yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))  # noqa: S506
    _, f_wall, f_cpu = _timed(lambda: real_parse(text))
    best = {k: min(v, key=lambda t: t[1]) for k, v in results.items()}
    print(f"load_city with PyYAML (libyaml):  {best['pyyaml'][0]:6.2f} s wall  {best['pyyaml'][1]:6.2f} s CPU")
    print(f"load_city with flowyaml:          {best['flowyaml'][0]:6.2f} s wall  {best['flowyaml'][1]:6.2f} s CPU")
    print(f"ratio (PyYAML / flowyaml), CPU:   {best['pyyaml'][1] / best['flowyaml'][1]:6.1f}x")
    print(f"parse only: PyYAML {p_cpu:.2f} s CPU, flowyaml {f_cpu:.2f} s CPU ({p_cpu / max(f_cpu, 1e-9):.1f}x)")
    print(f"checks after parsing (flowyaml run): ~{best['flowyaml'][1] - f_cpu:.2f} s CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
