"""``citybrain run --http-workers 2``: the engine's process and one extra HTTP process share the cockpit's port;
the extra one gets every window from the engine over Redis pub/sub (dashboards/api/relay.py). A live-push client
on each process sees the same window pushes (same windows, same rows, same close time), both answer
``/vitals/{table}/latest`` with the same rows for the same window, both push an alert change, a token made by
the engine works on both, and the extra process stops with the engine. Real processes, real Redis, real sockets."""
import json
import os
import re
import subprocess
import threading
import time

import httpx
import redis

from tests.dashboards.processes import CITYBRAIN, alive, wait_for


def _listen(base, h, pids):
    """One SSE client per process (a new connection until each pid said hello)."""
    out = {}
    for _ in range(60):
        c = httpx.Client(base_url=base, headers=h, timeout=60)
        s = c.stream("GET", "/api/v1/live")
        resp = s.__enter__()
        lines = resp.iter_lines()
        pid = json.loads(next(x for x in lines if x.startswith("data: "))[6:])["pid"]
        if pid in out:
            s.__exit__(None, None, None)
            c.close()
            continue
        out[pid] = (c, s, lines)
        if set(out) == set(pids):
            return out
    raise AssertionError(f"could not reach every process: {set(out)} of {pids}")


def _collect(lines, into, stop):
    event = None
    try:
        for line in lines:
            if stop.is_set():
                return
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                into.append((event, json.loads(line[6:]), time.time()))
    except httpx.HTTPError:  # the stream closed by the test at its end
        if not stop.is_set():
            raise


def test_run_with_two_http_processes_pushes_the_same_windows_from_both(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("CITYBRAIN_REDIS_URL",)}
    log = tmp_path / "run.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([CITYBRAIN, "run", "--headless", "--fresh", "--speed", "300", "--duration", "12h",
                                 "--out", str(tmp_path / "out"), "--http-port", "0", "--http-workers", "2",
                                 "--no-controllers"], stdout=subprocess.DEVNULL, stderr=err, env=env)
    pids = []
    try:
        text = wait_for(lambda: (t := log.read_text()) and "processes serve the cockpit" in t and "first admin token" in t and t,
                     300, "the engine's start lines")
        base = re.search(r"cockpit and API v1 at (http://127\.0\.0\.1:\d+)/", text).group(1)
        token = re.search(r"first admin token.*(cbt_\S+)", text).group(1)
        pids = [int(x) for x in re.search(r"\(pids ([\d, ]+)\)", text).group(1).split(", ")]
        assert len(pids) == 2 and pids[0] == proc.pid
        h = {"Authorization": f"Bearer {token}"}

        def engines():
            seen = {}
            for _ in range(40):  # a new connection each time: the kernel picks the process per connection
                with httpx.Client(timeout=30) as c:
                    j = c.get(base + "/healthz").json()
                    seen[j["pid"]] = j["engine_in_process"]
            return seen if set(seen) == set(pids) else None
        seen = wait_for(engines, 120, "both processes to answer")
        assert seen == {pids[0]: True, pids[1]: False}  # the extra process runs no engine of its own

        clients = _listen(base, h, pids)
        got = {pid: [] for pid in pids}
        stop = threading.Event()
        threads = [threading.Thread(target=_collect, args=(lines, got[pid], stop), daemon=True)
                   for pid, (_c, _s, lines) in clients.items()]
        for t in threads:
            t.start()
        wait_for(lambda: all(sum(e == "window" for e, _, _ in got[p]) >= 8 for p in pids), 180, "window pushes on both")
        # an alert change of the engine (its feed in Redis) reaches the clients of both processes
        from streams.redis_server import running_redis_url

        r = redis.Redis.from_url(running_redis_url(tmp_path / "out" / "redis"))
        changed_at = time.time()
        r.set("citybrain:alerts:feed", b'[{"fingerprint": "http-workers-test"}, {"fingerprint": "x"}]')
        r.close()
        wait_for(lambda: all(any(e == "alerts" and at >= changed_at for e, _, at in got[p]) for p in pids), 30,
              "the alert change pushed by both processes")
        time.sleep(3)
        stop.set()
        windows = {p: {d["window_end_ms"]: (d, at) for e, d, at in got[p] if e == "window"} for p in pids}
        common = sorted(set(windows[pids[0]]) & set(windows[pids[1]]))
        # the same windows pushed by both (a window pushed by one and not the other only at the edges of the
        # listening span, or when two close within one push interval)
        assert len(common) >= 6, {p: sorted(w) for p, w in windows.items()}
        for w in common:
            a, b = windows[pids[0]][w][0], windows[pids[1]][w][0]
            assert a == b, w  # same rows, same close time (the engine's, carried by the relay)
        lag = sorted(windows[pids[1]][w][1] - windows[pids[1]][w][0]["closed_wall_ms"] / 1000 for w in common)
        assert lag[len(lag) // 2] < 1.0, lag  # window close -> the extra process's client, median under 1 s
        for c, s, _ in clients.values():
            s.__exit__(None, None, None)
            c.close()

        # the same question, the same answer, whichever process takes the connection (same window)
        def same_latest():
            answers = {}
            for _ in range(40):
                with httpx.Client(base_url=base, headers=h, timeout=30) as c:
                    pid = c.get("/healthz").json()["pid"]
                    body = c.get("/api/v1/vitals/district/latest").json()
                    answers.setdefault(body["window_end_ms"], {})[pid] = body
            both = [v for v in answers.values() if set(v) == set(pids)]
            return both[0] if both else None
        pair = wait_for(same_latest, 60, "both processes answering the same window")
        a, b = pair[pids[0]], pair[pids[1]]
        assert a["rows"] == b["rows"] and len(a["rows"]) > 0 and a["source"] == b["source"] == "engine"
    finally:
        proc.terminate()
        proc.wait(90)
    wait_for(lambda: not any(alive(p) for p in pids), 30, "the extra process to stop with the engine")
