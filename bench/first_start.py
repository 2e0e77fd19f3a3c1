"""How long a new user waits: a fresh clone, the install (`scripts/bootstrap.sh`, as `make run` runs
it), then the first frame of the live view (`citybrain run` in a pseudo-terminal), and a second
start for comparison. Prints each phase with its time; the start-up lines the engine prints are
shown with the second they arrived, so a silent stretch would be visible.

    .venv/bin/python bench/first_start.py                  # clone of this repository's HEAD
    .venv/bin/python bench/first_start.py --cold-cache     # also without uv's download cache

Not run by CI (it downloads packages and takes minutes).
"""
from __future__ import annotations

import argparse
import os
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FRAME = re.compile(rb"[\xe2][\x94\x95][\x80-\xbf]")  # box-drawing characters: the view's panels


def first_frame_s(cmd: list[str], cwd: Path, timeout_s: float = 900) -> tuple[float | None, list[str]]:
    """Seconds from launching ``cmd`` in a pseudo-terminal until the live view draws; the lines it
    printed before, each with its arrival time."""
    t0 = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:  # the child: the user's terminal
        os.chdir(cwd)
        os.environ.update(COLUMNS="160", LINES="50")
        os.execvp(cmd[0], cmd)
    seen: list[str] = []
    frame_at = None
    while time.monotonic() - t0 < timeout_s and frame_at is None:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        for line in data.replace(b"\r", b"\n").split(b"\n"):
            text = line.strip().decode(errors="replace")
            if text.startswith(("citybrain:", "[", "compiling", "installed", "kernels")):
                seen.append(f"{time.monotonic() - t0:7.1f} s  {text[:120]}")
        if FRAME.search(data):
            frame_at = time.monotonic() - t0
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
    os.close(fd)
    return frame_at, seen


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cold-cache", action="store_true", help="use an empty uv cache (downloads every package)")
    ap.add_argument("--keep", action="store_true", help="keep the clone")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="citybrain-first-start-"))
    clone = work / "citybrain"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    env = dict(os.environ)
    if args.cold_cache:
        env["UV_CACHE_DIR"] = str(work / "uv-cache")
    t0 = time.monotonic()
    boot = subprocess.run(["scripts/bootstrap.sh"], cwd=clone, env=env, capture_output=True, text=True)
    install_s = time.monotonic() - t0
    steps = [line for line in boot.stderr.splitlines() if line.startswith(("[", "installed", "kernels"))]
    print("install (scripts/bootstrap.sh, what `make run` runs first):")
    print("\n".join(f"    {line}" for line in steps))
    if boot.returncode != 0:
        print(boot.stderr[-3000:], file=sys.stderr)
        return 1
    results = {}
    for label in ("first start after the install", "second start"):
        frame, lines = first_frame_s([str(clone / ".venv/bin/citybrain"), "run", "--http-port", "18089",
                                      "--out", "var/first-start"], clone)
        print(f"{label}:")
        print("\n".join(f"    {line}" for line in lines))
        results[label] = frame
    print(f"\ninstall {install_s:.0f} s; live view {results['first start after the install']:.1f} s after it "
          f"(second start {results['second start']:.1f} s)" if all(results.values()) else "no live view seen")
    if not args.keep:
        subprocess.run(["rm", "-rf", str(work)])
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
