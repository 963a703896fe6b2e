"""The server as a process: crash safety, restart, auth, the command line, shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from cloudsync.server.testing import serve

ROOT = str(Path(__file__).resolve().parents[2])


def test_acknowledged_writes_survive_kill_9(tmp_path):
    with serve(tmp_path) as server, requests.Session() as http:
        http.put(server.url + "/crash")
        acked: dict[str, str] = {}

        def write(i: int) -> None:
            r = requests.put(f"{server.url}/crash/doc{i}", json={"i": i, "pad": "x" * 200})
            if r.status_code == 201:
                acked[f"doc{i}"] = r.json()["rev"]

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(write, range(300)))
        bulk = http.post(server.url + "/crash/_bulk_docs", json={"docs": [{"_id": f"b{i}"} for i in range(500)]})
        acked.update({row["id"]: row["rev"] for row in bulk.json()})
        http.put(server.url + "/crash/_local/ckpt", json={"seq": "x"})
        server.kill()
        assert server.pid is None
        server.start()
        rows = http.get(server.url + "/crash/_all_docs").json()["rows"]
        assert {row["id"]: row["value"]["rev"] for row in rows} == acked
        assert http.get(server.url + "/crash/_local/ckpt").json()["seq"] == "x"
        changes = http.get(server.url + "/crash/_changes").json()
        assert len(changes["results"]) == len(acked)
        # Seqs continue after the crash instead of restarting.
        rev = http.put(server.url + "/crash/after", json={}).json()["rev"]
        last = http.get(server.url + "/crash/_changes", params={"since": changes["last_seq"]}).json()
        assert [(r["id"], r["changes"][0]["rev"]) for r in last["results"]] == [("after", rev)]


def test_restart_keeps_port_and_feeds_can_resume(tmp_path):
    with serve(tmp_path) as server, requests.Session() as http:
        url = server.url
        http.put(url + "/r")
        http.put(url + "/r/a", json={})
        since = http.get(url + "/r/_changes").json()["last_seq"]
        feed = requests.get(url + "/r/_changes", params={"feed": "continuous", "heartbeat": 50, "since": since},
                            stream=True, timeout=10)
        chunks = feed.iter_content(chunk_size=None)
        assert next(chunks).strip() == b""  # heartbeat: the feed is open
        started = time.monotonic()
        server.restart()  # SIGTERM must end the open feed promptly
        assert time.monotonic() - started < 8
        assert server.url == url
        rest = b"".join(chunks)  # the old feed ended cleanly
        assert b"last_seq" not in rest or rest.strip().endswith(b"}")
        http.put(url + "/r/b", json={})
        resumed = http.get(url + "/r/_changes", params={"since": since}).json()
        assert [row["id"] for row in resumed["results"]] == ["b"]


def test_auth(tmp_path):
    with serve(tmp_path, admin=("admin", "s3cret")) as server, requests.Session() as http:
        url = server.url
        assert http.get(url + "/").status_code == 200
        assert http.get(url + "/_up").status_code == 200
        r = http.get(url + "/_all_dbs")
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
        assert r.headers["WWW-Authenticate"].startswith("Basic")
        assert http.get(url + "/_all_dbs", auth=("admin", "wrong")).status_code == 401
        assert http.put(url + "/db", auth=("admin", "s3cret")).status_code == 201
        assert http.get(url + "/_session").json()["userCtx"]["name"] is None
        assert http.post(url + "/_session", json={"name": "admin", "password": "nope"}).status_code == 401
        r = http.post(url + "/_session", data={"name": "admin", "password": "s3cret"})
        assert r.status_code == 200 and r.json()["name"] == "admin" and "AuthSession" in http.cookies
        assert http.get(url + "/db").status_code == 200
        assert http.get(url + "/_session").json()["userCtx"] == {"name": "admin", "roles": ["_admin"]}
        server.restart()  # sessions survive a restart (the secret lives in the data dir)
        assert http.get(url + "/db").status_code == 200
        assert http.delete(url + "/_session").json() == {"ok": True}
        assert http.get(url + "/db").status_code == 401
        r = http.post(url + "/_session", json={"name": "admin", "password": "s3cret"})
        assert r.status_code == 200


def _run_cli(*args: str, env: dict | None = None, timeout: float = 15) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": ROOT, **(env or {})}
    return subprocess.run([sys.executable, "-m", "cloudsync.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def test_cli_refuses_public_host_without_auth():
    r = _run_cli("serve", "--host", "0.0.0.0", "--port", "0", "--memory")
    assert r.returncode != 0 and "--admin" in r.stderr


def test_cli_serve_prints_listening_line_and_stops_on_sigterm(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT, "CLOUDSYNC_ADMIN": "u:p"}
    proc = subprocess.Popen([sys.executable, "-m", "cloudsync.cli", "serve", "--port", "0", "--data-dir",
                             str(tmp_path / "data")], stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("cloudsync server listening on http://127.0.0.1:")
        url = line.split()[-1]
        assert requests.get(url + "/_all_dbs").status_code == 401  # CLOUDSYNC_ADMIN applies
        assert requests.get(url + "/_all_dbs", auth=("u", "p")).json() == []
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        proc.stdout.close()
    assert (tmp_path / "data").is_dir()


def test_cli_help_and_bad_admin():
    assert "--data-dir" in _run_cli("serve", "--help").stdout
    r = _run_cli("serve", "--admin", "nocolon", "--memory")
    assert r.returncode == 2 and "USER:PASSWORD" in r.stderr


def test_websocket_feeds_end_on_shutdown(tmp_path):
    import websocket

    with serve(memory=True) as server:
        requests.put(server.url + "/w")
        ws = websocket.create_connection(server.url.replace("http", "ws") + "/w/_changes?feed=websocket", timeout=10)
        ws.send(json.dumps({"since": "now", "heartbeat": 10000}))
        assert ws.recv() == "[]"
        server.stop()
        opcode, frame = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        ws.close()


def test_stalled_reader_is_dropped_and_writers_keep_going():
    """A subscriber that stops reading is disconnected after --send-timeout; writes never wait."""
    import select
    import socket

    with serve(memory=True, extra_args=("--send-timeout", "1")) as server, requests.Session() as http:
        http.put(server.url + "/slow")
        host, port = server.url.rsplit("/", 1)[-1].split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
        sock.connect((host, int(port)))
        sock.sendall(b"GET /slow/_changes?feed=continuous&include_docs=true&heartbeat=100 HTTP/1.1\r\n"
                     b"Host: 127.0.0.1\r\n\r\n")
        big = "x" * 20_000
        worst = 0.0
        for _ in range(0, 800, 50):
            t = time.monotonic()
            r = http.post(server.url + "/slow/_bulk_docs", json={"docs": [{"big": big} for _ in range(50)]})
            worst = max(worst, time.monotonic() - t)
            assert r.status_code == 201
        assert worst < 2.0
        # The stalled connection gets reset; wait for that without reading (reading would unstall it).
        poller = select.poll()
        poller.register(sock, select.POLLERR | select.POLLHUP | select.POLLRDHUP)
        events = poller.poll(15_000)
        sock.close()
        assert events, "the stalled subscriber was not disconnected"
        assert http.get(server.url + "/slow").json()["doc_count"] == 800


@pytest.mark.skipif(not os.path.exists("/proc/self/limits"), reason="reads /proc/<pid>/limits")
def test_server_raises_its_open_files_limit_to_the_hard_limit(tmp_path):
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
