"""The server as a process: acknowledged writes survive `kill -9`, a restart keeps its port
and lets feeds resume, shutdown ends WebSocket feeds, a stalled reader is dropped without
slowing writers, and the open-files limit is raised."""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import websocket

from cloudsync.server.testing import serve
from tests._servers.processes import gone, harness, wait_gone

ROOT = str(Path(__file__).resolve().parents[2])


# -- kill -9 -------------------------------------------------------------------------------------


@dataclass
class Crashed:
    """A database written to concurrently, killed with SIGKILL and started again."""

    url: str
    #: id -> rev of every write answered 201 before the kill.
    acked: dict[str, str]
    #: What the restarted server answered before any test wrote to it.
    all_docs: dict
    checkpoint: dict
    changes: dict


@pytest.fixture(scope="module")
def crashed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crashed]:
    """300 concurrent PUTs, a 500-document `_bulk_docs` and a `_local` write, then `kill -9`
    and a restart on the same data."""
    with serve(tmp_path_factory.mktemp("crash")) as server, requests.Session() as http:
        url = server.url + "/crash"
        http.put(url)
        acked: dict[str, str] = {}

        def write(i: int) -> None:
            r = requests.put(f"{url}/doc{i}", json={"i": i, "pad": "x" * 200})
            if r.status_code == 201:
                acked[f"doc{i}"] = r.json()["rev"]

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(write, range(300)))
        bulk = http.post(url + "/_bulk_docs", json={"docs": [{"_id": f"b{i}"} for i in range(500)]})
        acked.update({row["id"]: row["rev"] for row in bulk.json()})
        http.put(url + "/_local/ckpt", json={"seq": "x"})
        server.kill()
        assert server.pid is None
        server.start()
        yield Crashed(url, acked, http.get(url + "/_all_docs").json(), http.get(url + "/_local/ckpt").json(),
                      http.get(url + "/_changes").json())


def test_acknowledged_docs_survive_kill_9(crashed):
    """Every document write answered 201 before `kill -9` is there, at its rev, afterwards."""
    assert {row["id"]: row["value"]["rev"] for row in crashed.all_docs["rows"]} == crashed.acked


def test_local_docs_survive_kill_9(crashed):
    """A `_local` document written before `kill -9` is there afterwards."""
    assert crashed.checkpoint["seq"] == "x"


def test_changes_list_every_acknowledged_write_after_kill_9(crashed):
    """`_changes` after `kill -9` has one row per acknowledged document."""
    assert len(crashed.changes["results"]) == len(crashed.acked)


def test_seqs_continue_after_kill_9(crashed):
    """Seqs continue after a crash instead of restarting: a new write comes after the old `last_seq`."""
    with requests.Session() as http:
        rev = http.put(crashed.url + "/after", json={}).json()["rev"]
        last = http.get(crashed.url + "/_changes", params={"since": crashed.changes["last_seq"]}).json()
    assert [(r["id"], r["changes"][0]["rev"]) for r in last["results"]] == [("after", rev)]


# -- restart ------------------------------------------------------------------------------------


@dataclass
class Restarted:
    """A server restarted (SIGTERM, start) while a continuous feed was open on it."""

    url_before: str
    url_after: str
    #: Seconds the restart took, the open feed's shutdown included.
    took: float
    #: What the open feed sent after its first heartbeat, until it ended.
    rest: bytes
    #: The feed's `since`: the seq after document `a`.
    since: str


@pytest.fixture(scope="module")
def restarted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Restarted]:
    """A server with database `r` (document `a`), restarted while a continuous feed is open."""
    with serve(tmp_path_factory.mktemp("restart")) as server, requests.Session() as http:
        url = server.url
        http.put(url + "/r")
        http.put(url + "/r/a", json={})
        since = http.get(url + "/r/_changes").json()["last_seq"]
        feed = requests.get(url + "/r/_changes", params={"feed": "continuous", "heartbeat": 50, "since": since},
                            stream=True, timeout=10)
        chunks = feed.iter_content(chunk_size=None)
        assert next(chunks).strip() == b""  # heartbeat: the feed is open
        started = time.monotonic()
        server.restart()
        took = time.monotonic() - started
        yield Restarted(url, server.url, took, b"".join(chunks), since)


def test_sigterm_ends_an_open_feed_promptly(restarted):
    """SIGTERM ends an open continuous feed promptly: the restart takes under 8 s."""
    assert restarted.took < 8


def test_restart_keeps_the_port(restarted):
    """A restarted server listens at the same URL."""
    assert restarted.url_after == restarted.url_before


def test_open_feed_ends_cleanly_at_shutdown(restarted):
    """A feed open at shutdown ends cleanly: no `last_seq` line, or a complete one."""
    assert b"last_seq" not in restarted.rest or restarted.rest.strip().endswith(b"}")


def test_feed_resumes_from_its_since_after_restart(restarted):
    """After a restart, `_changes?since=<seq from before>` gives only the later writes."""
    with requests.Session() as http:
        http.put(restarted.url_after + "/r/b", json={})
        resumed = http.get(restarted.url_after + "/r/_changes", params={"since": restarted.since}).json()
    assert [row["id"] for row in resumed["results"]] == ["b"]


# -- shutdown -------------------------------------------------------------------------------------


def test_websocket_feeds_end_on_shutdown():
    """Stopping the server closes the WebSocket feeds open on it with a close frame."""
    with serve(memory=True) as server:
        requests.put(server.url + "/w")
        ws = websocket.create_connection(server.url.replace("http", "ws") + "/w/_changes?feed=websocket", timeout=10)
        ws.send(json.dumps({"since": "now", "heartbeat": 10000}))
        assert ws.recv() == "[]"
        server.stop()
        opcode, frame = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        ws.close()


# -- a stalled reader --------------------------------------------------------------------------------


@dataclass
class Stall:
    """Writes made while one continuous-feed subscriber stopped reading."""

    #: Status of each of the 16 `_bulk_docs` writes of 50 big documents.
    statuses: list[int]
    #: Seconds the slowest write took.
    worst: float
    #: What polling the stalled socket (without reading) reported within 15 s.
    events: list
    doc_count: int


@pytest.fixture(scope="module")
def stall() -> Iterator[Stall]:
    """A server with `--send-timeout 1`; a subscriber with a 4 KiB receive window that never
    reads while 800 documents of 20 KB are written."""
    with serve(memory=True, extra_args=("--send-timeout", "1")) as server, requests.Session() as http:
        http.put(server.url + "/slow")
        host, port = server.url.rsplit("/", 1)[-1].split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
        sock.connect((host, int(port)))
        sock.sendall(b"GET /slow/_changes?feed=continuous&include_docs=true&heartbeat=100 HTTP/1.1\r\n"
                     b"Host: 127.0.0.1\r\n\r\n")
        big = "x" * 20_000
        statuses, worst = [], 0.0
        for _ in range(0, 800, 50):
            t = time.monotonic()
            r = http.post(server.url + "/slow/_bulk_docs", json={"docs": [{"big": big} for _ in range(50)]})
            worst = max(worst, time.monotonic() - t)
            statuses.append(r.status_code)
        # The stalled connection gets reset; wait for that without reading (reading would unstall it).
        poller = select.poll()
        poller.register(sock, select.POLLERR | select.POLLHUP | select.POLLRDHUP)
        events = poller.poll(15_000)
        sock.close()
        yield Stall(statuses, worst, events, http.get(server.url + "/slow").json()["doc_count"])


def test_writes_succeed_while_a_reader_stalls(stall):
    """Every write is answered 201 while a subscriber has stopped reading."""
    assert all(status == 201 for status in stall.statuses)


def test_writes_never_wait_for_a_stalled_reader(stall):
    """No write waits for a subscriber that stopped reading: the slowest takes under 2 s."""
    assert stall.worst < 2.0


def test_stalled_reader_is_disconnected(stall):
    """A subscriber that stops reading is disconnected after `--send-timeout`."""
    assert stall.events, "the stalled subscriber was not disconnected"


def test_every_write_lands_while_a_reader_stalls(stall):
    """All 800 documents written while a subscriber stalled are in the database."""
    assert stall.doc_count == 800


# -- resource limits ----------------------------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/proc/self/limits"), reason="reads /proc/<pid>/limits")
def test_server_raises_its_open_files_limit_to_the_hard_limit():
    """Started with a low soft limit on open files, the server raises it (one socket per subscriber)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(256, soft)
    if hard != resource.RLIM_INFINITY and hard <= low:
        pytest.skip("the hard limit is already that low")

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))

    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.Popen([sys.executable, "-m", "cloudsync.server", "--port", "0", "--memory"],
                            stdout=subprocess.PIPE, text=True, env=env, preexec_fn=lower)
    try:
        assert proc.stdout.readline().startswith("cloudsync server listening on")
        limits = Path(f"/proc/{proc.pid}/limits").read_text().splitlines()
        line = next(x for x in limits if x.startswith("Max open files"))
        limit_soft = line.split()[3]
        expected = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
        assert limit_soft == expected, line
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


# -- an orphaned server stops ----------------------------------------------------------------

HARNESS = """
import sys
from cloudsync.server.testing import serve
from tests._servers.processes import gone, harness, wait_gone
with serve(memory=True) as server:
    print(server.pid, flush=True)
    sys.stdin.read()  # until killed
"""


def test_a_server_started_by_testing_stops_when_its_harness_is_killed_9():
    """`testing.serve` passes `--parent-pid`: when the process that started the server is
    killed with -9 (no cleanup runs), the server notices and exits by itself."""
    with harness(HARNESS, startup_timeout=30) as (proc, server_pid):
        assert not gone(server_pid)
        proc.kill()
        proc.wait(10)
        assert wait_gone(server_pid, 15), "the orphaned server is still running"


@contextlib.contextmanager
def watching_another_process() -> Iterator[tuple[subprocess.Popen, subprocess.Popen]]:
    """`(other, server)`: a process of our own, and a listening server started with
    `--parent-pid` naming it; both killed afterwards."""
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    env = dict(os.environ, PYTHONPATH=ROOT)
    server = subprocess.Popen([sys.executable, "-m", "cloudsync.server", "--port", "0", "--memory",
                               "--parent-pid", str(other.pid)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        ready, _, _ = select.select([server.stdout], [], [], 30)
        assert ready and "listening" in server.stdout.readline()
        yield other, server
    finally:
        other.kill()
        other.wait(10)
        server.kill()
        server.wait(10)


def test_parent_pid_of_a_process_that_exits_stops_the_server():
    """`--parent-pid` names any process: the server stops once that process has exited."""
    with watching_another_process() as (other, server):
        assert server.poll() is None
        other.kill()
        other.wait(10)
        assert server.wait(15) == 0


def test_parent_pid_of_an_exited_unreaped_process_stops_the_server():
    """A `--parent-pid` process that has exited but is not reaped yet (a zombie) counts as
    gone: the server stops."""
    with watching_another_process() as (other, server):
        os.kill(other.pid, 9)  # not waited for: a zombie until the block ends
        assert server.wait(15) == 0
