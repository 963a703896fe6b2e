"""Subscriptions against real servers: every transport, exactly once, in order; server
restarts; a consumer killed mid-stream resuming from a file checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import cloudsync
from cloudsync.checkpoint import FileCheckpoint
from cloudsync.subscription import ReconnectPolicy, Subscription

pytestmark = pytest.mark.integration

TRANSPORTS = {"pouchdb": ("longpoll", "continuous"), "embedded": ("longpoll", "continuous", "sse", "websocket")}
FAST = ReconnectPolicy(backoff=0.05, max_backoff=0.5)


def transport_options(name: str) -> dict:
    # Our server honours short heartbeats on websocket (Sync Gateway would raise them to 25 s).
    return {"min_heartbeat": 0} if name == "websocket" else {}


def server_order(db, since) -> list[tuple[str, str]]:
    """Every (id, rev) after ``since`` in the server's own feed order (a normal feed)."""
    answer = db._http.request("GET", db.path + "/_changes", params={"since": since if isinstance(since, str) else str(since)})
    return [(r["id"], r["changes"][0]["rev"]) for r in answer["results"]]


def collect(sub, count: int, timeout: float = 60) -> list:
    got = []
    timer = threading.Timer(timeout, sub.close)
    timer.start()
    try:
        for change in sub:
            got.append(change)
            if len(got) == count:
                break
    finally:
        timer.cancel()
    return got


def write(db, n: int, prefix: str, batch: int = 100) -> None:
    for start in range(0, n, batch):
        db.bulk([{"_id": f"{prefix}{i:05d}", "n": i} for i in range(start, min(n, start + batch))]).run()


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["longpoll", "continuous", "sse", "websocket"])
def test_thousand_docs_exactly_once_in_order(db, server_kind, transport) -> None:
    """1,000 docs written while subscribed arrive once each, in the server's seq order."""
    if transport not in TRANSPORTS[server_kind]:
        pytest.skip(f"{server_kind} has no {transport} feed")
    start = db.info()["update_seq"]
    sub = Subscription(db, transport, since="now", heartbeat=1, reconnect=FAST,
                       transport_options=transport_options(transport))
    with sub:
        writer = threading.Thread(target=write, args=(db, 1000, "doc"))
        writer.start()
        got = collect(sub, 1000)
        writer.join()
    received = [(c.id, c.rev) for c in got]
    assert len(received) == 1000 and len(set(received)) == 1000
    assert received == server_order(db, start)
    assert sub.stats.duplicates == 0


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["longpoll", "continuous"])
def test_backlog_in_small_pages_exactly_once_in_order(db, transport) -> None:
    """A backlog read in pages of 100 (long poll; the continuous transport's catch-up),
    with each next page asked for ahead on servers whose answers are held whole, arrives
    once each and in the server's order, then live changes follow."""
    write(db, 1050, "old")
    transport_ = cloudsync.LongPollTransport(page_size=100) if transport == "longpoll" else cloudsync.ContinuousTransport(page_size=100)
    with Subscription(db, transport_, since=0, heartbeat=1, reconnect=FAST) as sub:
        got = collect(sub, 1050)
        write(db, 5, "new")
        got += collect(sub, 5)
    received = [(c.id, c.rev) for c in got]
    assert received == server_order(db, 0)
    assert sub.stats.duplicates == 0 and sub.stats.errors == 0


@pytest.mark.parametrize("transport", ["longpoll", "continuous"])
def test_selector_filter(db, transport) -> None:
    """A selector filter delivers only matching docs on every server (body or query form)."""
    sub = Subscription(db, transport, since=0, selector={"type": "order"}, include_docs=True, reconnect=FAST)
    with sub:
        db.bulk([{"_id": "a", "type": "order"}, {"_id": "b", "type": "user"}, {"_id": "c", "type": "order"}]).run()
        got = collect(sub, 2, timeout=20)
    assert [c.id for c in got] == ["a", "c"] and got[0].doc["type"] == "order"


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["longpoll", "continuous", "sse", "websocket"])
def test_server_restart_mid_stream(restartable, transport) -> None:
    """Restarting the server mid-stream (same data) still yields every change exactly once."""
    client = cloudsync.Client(restartable.url, timeout=(5, 30))
    db = client.create_database("restart", exist_ok=True)
    sub = Subscription(db, transport, since="now", heartbeat=1, reconnect=FAST,
                       transport_options=transport_options(transport))
    with sub:
        write(db, 300, "before")
        first = collect(sub, 150)
        restartable.restart()
        write(db, 300, "after")
        rest = collect(sub, 450)
    received = [(c.id, c.rev) for c in first + rest]
    assert len(received) == 600 and len(set(received)) == 600
    assert sub.stats.errors >= 1
    client.close()


CONSUMER = r"""
import sys, time, cloudsync
from cloudsync.checkpoint import FileCheckpoint
from cloudsync.subscription import Subscription, ReconnectPolicy
url, name, cp, out, transport = sys.argv[1:6]
db = cloudsync.Client(url).database(name)
with open(out, "a") as log, Subscription(db, transport, since=0, checkpoint=FileCheckpoint(cp),
                                         heartbeat=1, reconnect=ReconnectPolicy(backoff=0.05, max_backoff=0.5)) as sub:
    for change in sub:
        log.write(change.id + "\n"); log.flush()
        time.sleep(0.002)  # a slow consumer, so the kill lands mid-stream
"""


@pytest.mark.slow
def test_consumer_killed_resumes_from_file_checkpoint(db, server_url, tmp_path: Path) -> None:
    """SIGKILL the consumer mid-stream; restarted with its file checkpoint, no change is missing."""
    write(db, 600, "k")
    out, cp = tmp_path / "seen.txt", tmp_path / "cp.json"
    args = [sys.executable, "-c", CONSUMER, server_url, db.name, str(cp), str(out), "continuous"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(args, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not out.exists() or len(out.read_text().split()) < 200):
        time.sleep(0.05)  # watching another process's file: nothing to wait on
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert FileCheckpoint(cp).load() is not None
    proc = subprocess.Popen(args, env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(set(out.read_text().split())) < 600:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    seen = out.read_text().split()
    assert set(seen) == {f"k{i:05d}" for i in range(600)}
