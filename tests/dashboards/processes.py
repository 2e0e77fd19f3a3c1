"""What the tests that start real `citybrain` processes share: the command's path, waiting for a
condition with a deadline, and whether a process is still alive (a zombie is not)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

CITYBRAIN = str(Path(sys.executable).parent / "citybrain")


def wait_for(fn, timeout_s: float, what: str, every_s: float = 0.3):
    """``fn()``'s first truthy answer, asked every ``every_s`` until ``timeout_s``; else an AssertionError naming ``what``."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        got = fn()
        if got:
            return got
        time.sleep(every_s)
    raise AssertionError(f"timed out waiting for {what}")


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
