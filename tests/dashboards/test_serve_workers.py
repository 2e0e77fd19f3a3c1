"""``citybrain serve --workers 2``: two processes answer on one port (SO_REUSEPORT), with the same bytes for the
same question, under the same tokens (made in the shared Redis), each pushing live alert changes to its own SSE
clients; stopping the first stops the others, and so does killing it (parent-death signal). Real processes, real
Redis, real sockets."""
import json
import os
import re
import signal
import subprocess

import httpx
import redis

from tests.dashboards.processes import CITYBRAIN, alive, wait_for


def _start(out, url, log):
    err = open(log, "w")
    proc = subprocess.Popen([CITYBRAIN, "serve", "--out", str(out), "--redis", url, "--http-port", "0", "--workers", "2",
                             "--no-admin-token"], stdout=subprocess.DEVNULL, stderr=err)
    text = wait_for(lambda: (t := log.read_text()) and "processes serve this port" in t and t, 180, "the serve banner")
    base = re.search(r"at (http://127\.0\.0\.1:\d+)/", text).group(1)
    pids = [int(x) for x in re.search(r"\(pids ([\d, ]+)\)", text).group(1).split(", ")]
    return proc, base, pids


def _pids_answering(base, n=60):
    seen = set()
    for _ in range(n):  # a new connection each time: the kernel picks the process per connection
        with httpx.Client(timeout=30) as c:
            seen.add(c.get(base + "/healthz").json()["pid"])
    return seen


def test_two_workers_share_the_port_and_stop_together(demo_run, cockpit_redis, tokens, tmp_path):
    _city, out = demo_run
    proc, base, pids = _start(out, cockpit_redis, tmp_path / "serve.log")
    try:
        assert len(pids) == 2 and pids[0] == proc.pid
        wait_for(lambda: _pids_answering(base) == set(pids), 60, "both processes to answer")
        # the same answer from both: a token made elsewhere (shared Redis) works on each, bytes identical
        h = {"Authorization": f"Bearer {tokens['viewer']}"}
        bodies = {}
        for _ in range(60):
            with httpx.Client(base_url=base, headers=h, timeout=30) as c:
                pid = c.get("/healthz").json()["pid"]
                bodies.setdefault(pid, set()).add(c.get("/api/v1/alerts?limit=20").content)
        assert set(bodies) == set(pids) and len(set.union(*bodies.values())) == 1
        assert httpx.get(base + "/api/v1/alerts", timeout=30).status_code == 401  # on whichever process
        # each worker pushes an alert change of the engine to its own live clients (no engine in these processes)
        streams = []  # (client, stream context, response, lines, pid from the hello event)
        for _ in range(40):
            c = httpx.Client(base_url=base, headers=h, timeout=30)
            s = c.stream("GET", "/api/v1/live")
            resp = s.__enter__()
            lines = resp.iter_lines()
            hello = next(x for x in lines if x.startswith("data: "))
            streams.append((c, s, lines, json.loads(hello[6:])["pid"]))
            if {x[3] for x in streams} == set(pids):
                break
        assert {x[3] for x in streams} == set(pids)
        r = redis.Redis.from_url(cockpit_redis)
        old = r.get("citybrain:alerts:feed")
        r.set("citybrain:alerts:feed", b'[{"fingerprint": "workers-test"}]')
        got = set()
        try:
            for c, s, lines, pid in streams:
                for line in lines:
                    if line.startswith("data: ") and '"count":1' in line.replace(" ", ""):
                        got.add(pid)
                        break
                s.__exit__(None, None, None)
                c.close()
        finally:
            r.set("citybrain:alerts:feed", old) if old is not None else r.delete("citybrain:alerts:feed")
            r.close()
        assert got == set(pids), got
    finally:
        proc.terminate()
        proc.wait(60)
    wait_for(lambda: not any(alive(p) for p in pids), 30, "the worker to stop with the first process")


def test_a_killed_first_process_takes_its_workers_along(demo_run, cockpit_redis, tmp_path):
    _city, out = demo_run
    proc, base, pids = _start(out, cockpit_redis, tmp_path / "serve.log")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    wait_for(lambda: not any(alive(p) for p in pids[1:]), 30, "the worker to die with its parent")
