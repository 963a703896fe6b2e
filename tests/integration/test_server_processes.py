"""The third-party servers the suite starts do not outlive a suite killed with -9."""

from __future__ import annotations

from tests._servers.processes import gone, harness, wait_gone

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
    with harness(HARNESS, startup_timeout=60) as (proc, server_pid):
        assert not gone(server_pid)
        proc.kill()
        proc.wait(10)
        assert wait_gone(server_pid, 15), "the orphaned pouchdb-server is still running"
