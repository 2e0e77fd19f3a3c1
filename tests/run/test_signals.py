"""``citybrain run``'s signal handling: the first SIGTERM asks for a clean stop; a second one ends the
process even when its exit is stuck (the loop's handlers used to swallow every later signal)."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

STUCK = """
import asyncio
from citybrain.commands.run import _install_signal_handlers

class Driver:
    def stop(self):
        print("stop asked", flush=True)

async def main():
    _install_signal_handlers(Driver())
    print("ready", flush=True)
    await asyncio.sleep(3600)  # an exit that never finishes by itself

asyncio.run(main())
"""


def test_a_second_sigterm_ends_a_stuck_exit():
    proc = subprocess.Popen([sys.executable, "-c", STUCK], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.stdout.readline().strip() == "stop asked"
        time.sleep(0.5)
        assert proc.poll() is None  # the first one is a clean-stop request, not an exit
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
