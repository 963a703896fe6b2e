"""Watching a process from outside: whether it is gone, waited for with a deadline, and
a harness process that starts a server and can be killed with -9."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def gone(pid: int) -> bool:
    """Whether process `pid` has exited (a zombie nobody has reaped yet counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait up to `timeout` seconds for process `pid` to exit; whether it did."""
    deadline = time.monotonic() + timeout
    while not gone(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


ROOT = str(Path(__file__).resolve().parents[2])


@contextlib.contextmanager
def harness(code: str, startup_timeout: float) -> Iterator[tuple[subprocess.Popen, int]]:
    """`(harness, server_pid)`: a Python process running `code`, which starts a server and
    prints its pid, then waits until killed. Afterwards the harness is killed and, if the
    server outlived it, the server too (by its pid)."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    server_pid = None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], startup_timeout)
        assert ready, f"the harness did not start its server within {startup_timeout:g} s"
        assert proc.stdout is not None
        server_pid = int(proc.stdout.readline())
        yield proc, server_pid
    finally:
        proc.kill()
        proc.wait(10)
        if server_pid is not None and not gone(server_pid):
            os.kill(server_pid, signal.SIGKILL)
