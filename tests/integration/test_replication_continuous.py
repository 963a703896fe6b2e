"""Continuous replication, two-way sync, and a replication killed mid-way, on real servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import cloudsync
from tests.faults.proxy import FaultProxy
from tests.integration.replication_helpers import leaf_revs, state

ROOT = Path(__file__).resolve().parents[2]
FAST = cloudsync.ReconnectPolicy(backoff=0.05, max_backoff=0.5)
DEADLINE = 90.0


@pytest.fixture
def make_db(request: pytest.FixtureRequest) -> Iterator[Callable[[str, str], cloudsync.Database]]:
    """Makes new databases on a session server (`"embedded"`, `"pouchdb"`); deletes them after."""
    made: list[tuple[cloudsync.Client, str]] = []
    count = iter(range(1000))

    def make(kind: str, url: str | None = None) -> cloudsync.Database:
        client = cloudsync.Client(url or request.getfixturevalue(f"{kind}_url"), timeout=(2, 10))
        db = client.create_database(f"cont-{os.getpid()}-{id(made)}-{next(count)}")
        made.append((client, db.name))
        return db

    yield make
    for client, name in made:
        client.delete_database(name, missing_ok=True)
        client.close()


class Watch:
    """An `on_progress` that wakes a waiter: wait for a condition with a deadline, looking
    again after each batch a replication writes (or every half second)."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self, progress: cloudsync.ReplicationProgress) -> None:
        self.event.set()

    def until(self, what: str, done: Callable[[], bool], deadline: float = DEADLINE) -> None:
        end = time.monotonic() + deadline
        while not done():
            if time.monotonic() > end:
                pytest.fail(f"{what} did not happen within {deadline} s")
            self.event.wait(0.5)
            self.event.clear()


def write_round(db: cloudsync.Database, n: int) -> None:
    """Twenty documents, one updated, one deleted, one conflict made with new_edits=false."""
    written = list(db.bulk([{"_id": f"r{n}-{i}", "n": i} for i in range(20)]))
    db.bulk([{"_id": written[0].id, "_rev": written[0].rev, "edited": True},
             {"_id": written[1].id, "_rev": written[1].rev, "_deleted": True}]).run()
    db.bulk([{"_id": f"r{n}-conflict", "_rev": f"1-{c * 32}", "side": c} for c in "ab"], new_edits=False).run()


@pytest.mark.parametrize("source_kind", ["embedded", "pouchdb"])
def test_continuous_replication_keeps_both_sides_equal_through_connection_faults(
        source_kind: str, make_db: Any, request: pytest.FixtureRequest) -> None:
    """Connections between the source and the replicator are reset, closed and dropped
    while the source is written to: the target ends up equal to the source."""
    source = make_db(source_kind)
    target = make_db("embedded")
    upstream = urlsplit(request.getfixturevalue(f"{source_kind}_url"))
    watch = Watch()
    with FaultProxy("127.0.0.1", upstream.port) as proxy:
        proxied = cloudsync.Client(proxy.url, timeout=(2, 3)).database(source.name)
        rep = cloudsync.replicate(proxied, target, continuous=True, batch_size=25, reconnect=FAST,
                                  subscription_options={"heartbeat": 0.5, "stall_timeout": 2.0},
                                  on_progress=watch)
        try:
            for n, fault in enumerate([proxy.reset_all, proxy.close_all, proxy.blackhole, proxy.reset_all]):
                write_round(source, n)
                watch.until(f"round {n} starting to arrive", lambda: rep.progress.changes_read > 0)
                fault()
            write_round(source, 99)
            watch.until("the target catching up", lambda: leaf_revs(target) == leaf_revs(source))
            assert rep.state in ("running", "idle")
        finally:
            rep.stop()
        assert rep.state == "stopped"
        assert proxy.faults_injected
    assert state(target) == state(source)


def test_two_way_sync_is_two_replications(make_db: Any) -> None:
    """A → B and B → A running at once: writes on both sides, and a conflict made by
    editing one document on both, end up on both sides."""
    a, b = make_db("embedded"), make_db("pouchdb")
    watch = Watch()
    options = {"continuous": True, "reconnect": FAST, "on_progress": watch,
               "subscription_options": {"heartbeat": 0.5}}
    with cloudsync.replicate(a, b, **options), cloudsync.replicate(b, a, **options):
        shared = a.create({"_id": "shared", "v": 0})
        write_round(a, 1)
        write_round(b, 2)
        watch.until("the shared document reaching b", lambda: "shared" in leaf_revs(b))
        a.update({**shared, "v": "a"})
        b.update({**shared, "v": "b"})
        watch.until("a conflict on both sides, and both sides equal",
                    lambda: len(leaf_revs(a).get("shared", [])) == 2 and leaf_revs(a) == leaf_revs(b))
    assert state(a, revpos=False) == state(b, revpos=False)


def _pouchdb_replicate(source: cloudsync.Database, target: cloudsync.Database) -> dict[str, Any]:
    node = subprocess.run(["node", str(ROOT / "tests" / "node" / "pouchdb_replicate.js"), source.url, target.url],
                          capture_output=True, text=True, timeout=120)
    assert node.returncode == 0, node.stderr[-3000:]
    return json.loads(node.stdout)


def test_pouchdb_checkpoints_and_ours_do_not_confuse_each_other(make_db: Any) -> None:
    """PouchDB's replicator and ours replicate the same databases in turn: each keeps its
    own `_local/` checkpoint, each resumes from its own (ours reads only what is new)."""
    if not (ROOT / "tests" / "node" / "node_modules" / "pouchdb-node").exists():
        pytest.skip("PouchDB for Node is not installed (scripts/test installs tests/node)")
    source, target = make_db("embedded"), make_db("pouchdb")
    write_round(source, 1)
    assert _pouchdb_replicate(source, target)["docs_written"] > 0
    ours = cloudsync.replicate(source, target).progress
    assert ours.missing_found == 0  # PouchDB copied it all: nothing is missing
    write_round(source, 2)
    assert _pouchdb_replicate(source, target)["docs_read"] > 0
    write_round(source, 3)
    again = cloudsync.replicate(source, target).progress
    assert again.changes_read == len(leaf_revs(source)) - ours.changes_read  # rounds 2 and 3 only
    assert 0 < again.docs_written < again.missing_checked  # round 2 was there already
    assert state(target, revpos=False) == state(source, revpos=False)


KILLED_RUN = """
import sys, cloudsync
source = cloudsync.Client(sys.argv[1]).database(sys.argv[2])
target = cloudsync.Client(sys.argv[1]).database(sys.argv[3])
def report(p):
    print(p.docs_written, flush=True)
cloudsync.replicate(source, target, batch_size=100, checkpoint_interval=0, on_progress=report)
"""


def test_a_replication_killed_mid_way_resumes_from_its_checkpoint(make_db: Any, embedded_url: str) -> None:
    """A replication process killed with SIGKILL after a few batches leaves a checkpoint;
    the next run reads only the changes after it, and the target ends up complete."""
    total = 2000
    source, target = make_db("embedded"), make_db("embedded")
    for start in range(0, total, 1000):
        source.bulk([{"_id": f"d{i:05}", "n": i} for i in range(start, start + 1000)]).run()
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, embedded_url, source.name, target.name],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None
        end = time.monotonic() + DEADLINE
        for line in proc.stdout:  # a line per batch written; the process is killed well before its end
            if line.strip().isdigit() and int(line) >= 500 or time.monotonic() > end:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    rep_id = cloudsync.Replication(source, target).id
    recorded = source.read_local(f"_local/{rep_id}")["history"][0]["docs_written"]
    assert 500 <= recorded < total
    second = cloudsync.replicate(source, target).progress
    assert second.changes_read == total - recorded
    assert leaf_revs(target) == leaf_revs(source)


def test_a_source_answering_404_to_bulk_get_is_read_with_open_revs(make_db: Any, embedded_url: str) -> None:
    """A source whose `_bulk_get` answers 404 (a server without it) is read a document at
    a time with `open_revs` from then on, and what is read is the same."""
    from cloudsync.replication.checkpoints import SessionStats
    from cloudsync.replication.revisions import Batch, Revisions

    source, target = make_db("embedded"), make_db("embedded")
    write_round(source, 1)
    wanted = {doc_id: revs for doc_id, revs in leaf_revs(source).items()}
    with FaultProxy("127.0.0.1", urlsplit(embedded_url).port) as proxy:
        proxy.respond(404, headers={"Content-Type": "application/json"},
                      body='{"error":"not_found","reason":"missing"}', match=rb"POST /[^ ]*/_bulk_get")
        proxied = cloudsync.Client(proxy.url, timeout=(2, 10)).database(source.name)
        revisions = Revisions(proxied, target)
        batch = Batch(seq=None, changes=len(wanted))
        revisions.read(batch, target.revs_diff(wanted), SessionStats())
        assert proxy.pending_canned == 0
        assert revisions.use_bulk_get is False
        revisions.write(batch, SessionStats())
    assert state(target) == state(source)
