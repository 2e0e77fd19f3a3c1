"""A worker loads every numba kernel its two stages call before it joins its group (issue 14).

Numba loads a kernel's machine code (or compiles it) on the first call with each argument-type
signature. Loaded inside the worker's event loop — on the first merged ticks — it stalled every
partition's reads. The check runs in a fresh interpreter (kernels load once per process: in the
test process other tests have loaded them already, and the check could not fail): after
``streams.faust_stages.warm_up`` of the worker's city, a stretch of another seed through two
partition stages and the merge stage, with the operators ``warm_up`` returned, must not add a
signature to any numba dispatcher. Without ``load_merge_kernels`` it added the green-wave
(platoon, bandwidth), segment-traffic, anomaly-batch and dedup kernels.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

CHECK = textwrap.dedent("""
    import gc, json, tempfile
    from numba.core.dispatcher import Dispatcher
    from brain.city import demo_city_path, load_city
    from brain.pipeline import PipelineConfig
    from streams import faust_stages as fs
    from streams.sim import Simulator

    def signatures():
        return {f"{d.py_func.__module__}.{d.py_func.__name__}": len(d.signatures)
                for d in gc.get_objects() if isinstance(d, Dispatcher)}

    city, config = load_city(demo_city_path()), PipelineConfig()
    ops = fs.warm_up(city, config, tempfile.mkdtemp())
    before = signatures()
    sim = Simulator(city, seed=SEED)
    lines = [l for b in sim.jsonl_batches(sim.start_ms + 3 * 3_600_000, batch_s=60) for l in b.split(b"\\n") if l]
    parts = [fs.PartitionPipeline(city, config, partition=p) for p in (0, 1)]
    merge = fs.MergePipeline(city, config, partitions=2, window_operators=ops)
    ticks = 0
    for i in range(0, len(lines), 2000):  # batches as a worker takes them
        for p, pipe in enumerate(parts):
            pipe.ingest_jsonl(b"\\n".join(l for l in lines[i:i + 2000] if fs.hash_partition(l, 2) == p))
            for partial in pipe.take_partials():
                ticks += sum(len(merge.add_piece(m)) for m in fs.partial_pieces(partial))
    after = signatures()
    print(json.dumps({"ticks": ticks, "loaded": {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}}))
""")


def test_no_kernel_loads_after_warm_up():
    import random

    seed = random.randrange(1, 1 << 20)
    run = subprocess.run([sys.executable, "-c", CHECK.replace("SEED", str(seed))], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["ticks"] >= 20, result  # the stretch merged windows (anomaly, faults, green wave ran)
    assert result["loaded"] == {}, f"seed {seed}: kernels loaded after warm_up, inside the worker's loop: {result['loaded']}"
