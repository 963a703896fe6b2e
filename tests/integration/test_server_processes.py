"""The third-party servers the suite starts do not outlive a suite killed with -9."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path

from tests._servers.processes import gone, wait_gone

ROOT = str(Path(__file__).resolve().parents[2])

HARNESS = """
import sys
from tests._servers.pouchdb import PouchDBServer
with PouchDBServer() as server:
    print(server.pid, flush=True)
    sys.stdin.read()  # until killed
"""


def test_pouchdb_server_exits_when_the_process_that_started_it_is_killed_9():
    """pouchdb-server is started with a preload that exits once its parent is gone, so a
    harness killed with -9 (no cleanup runs) leaves no server behind."""
    harness = subprocess.Popen([sys.executable, "-c", HARNESS], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    server_pid = None
    try:
        ready, _, _ = select.select([harness.stdout], [], [], 60)
        assert ready, "the harness did not start pouchdb-server within 60 s"
        server_pid = int(harness.stdout.readline())
        assert not gone(server_pid)
        harness.kill()
        harness.wait(10)
        assert wait_gone(server_pid, 15), "the orphaned pouchdb-server is still running"
    finally:
        harness.kill()
        harness.wait(10)
        if server_pid is not None and not gone(server_pid):
            os.kill(server_pid, 9)
