"""Live queries against real servers: the randomized consistency test (writes moving
documents into, within and out of a sorted limited window, with connections reset and
the server restarted in between), and the behaviours around it."""

from __future__ import annotations

import os
import random
import threading
from urllib.parse import urlsplit

import pytest

import cloudsync
from cloudsync import LiveQueryEvent
from cloudsync._result_window import replay
from cloudsync.errors import BadRequest
from cloudsync.subscription import ReconnectPolicy
from cloudsync.transports import MockTransport
from tests.faults.proxy import FaultProxy

pytestmark = pytest.mark.integration

TRANSPORTS = {"pouchdb": ("longpoll", "continuous"), "embedded": ("longpoll", "continuous", "sse", "websocket")}
FAST = ReconnectPolicy(backoff=0.05, max_backoff=0.3)
SELECTOR = {"type": "order"}
WINDOW = {"type": "order", "total": {"$gte": 0}}  # pouchdb-server sorts only on a field the selector names
SORT = [{"total": "desc"}]
SETTLE = 30.0  # seconds a live query gets to catch up after the last write


def feed_options(transport: str) -> dict:
    options: dict = {"reconnect": FAST, "heartbeat": 1.0}
    if transport == "websocket":
        options["transport_options"] = {"min_heartbeat": 0}
    return options


class Recorder:
    """Collects a live query's event batches on its delivery thread."""

    def __init__(self) -> None:
        self.events: list[LiveQueryEvent] = []
        self.batches = 0
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()

    def __call__(self, events: list[LiveQueryEvent]) -> None:
        with self.lock:
            self.events += events
            self.batches += 1


def random_ops(rng: random.Random, writer: cloudsync.Database, docs: dict, count: int, fault) -> None:
    """`count` writes of orders and notes whose totals move them across the window;
    `fault(i)` runs between writes."""
    for i in range(count):
        fault(i)
        doc_id = f"o{rng.randrange(25):02d}"
        current = docs.get(doc_id)
        roll = rng.random()
        if current is not None and roll < 0.15:
            writer.delete(current)
            del docs[doc_id]
            continue
        body = {"type": "order" if rng.random() < 0.8 else "note", "total": rng.randrange(40)}
        if current is None:
            docs[doc_id] = writer.create({"_id": doc_id, **body})
        else:
            docs[doc_id] = writer.update({**current, **body})


def run_scenario(url: str, transport: str, seed: int, count: int, fault_at, *, limit: int = 5) -> None:
    """Seeded writes with faults, then: results == a fresh query, and the events
    replayed onto the snapshot == results."""
    rng = random.Random(seed)
    name = f"lq-{os.getpid()}-{transport}-{seed}-{rng.randrange(10**6)}"
    upstream = urlsplit(url)
    with cloudsync.Client(url, timeout=(5, 30)) as direct, \
            FaultProxy(upstream.hostname, upstream.port) as proxy, \
            cloudsync.Client(proxy.url, timeout=(5, 30)) as through:
        writer = direct.create_database(name)
        writer.create_index(["total"])
        docs: dict = {}
        random_ops(rng, writer, docs, 15, lambda i: None)
        recorder = Recorder()
        lq = through.database(name).live_query(WINDOW, sort=SORT, limit=limit, margin=2, transport=transport,
                                               **feed_options(transport))
        with lq:
            snapshot = lq.results
            lq.start(recorder, recorder.errors.append)
            random_ops(rng, writer, docs, count, lambda i: fault_at(i, proxy))
            fresh = list(writer.query(WINDOW, sort=SORT, limit=limit))
            caught_up = lq.wait_for(lambda results: results == fresh, SETTLE)
            assert caught_up, f"seed {seed}: {lq.results} != {fresh} (errors: {recorder.errors})"
            results = lq.results
            lq.close(timeout=5)
        with recorder.lock:
            assert replay(snapshot, recorder.events) == results, f"seed {seed}"
        assert not recorder.errors
        direct.delete_database(name, missing_ok=True)


@pytest.mark.parametrize("transport, seed", [(t, 11 + i) for i, t in enumerate(TRANSPORTS["embedded"])])
def test_randomized_window_survives_resets_and_restarts(restartable, transport, seed):
    """Seeded inserts, updates and deletes moving orders into, within and out of a
    `limit=5` window sorted by total, with every connection reset and the server
    restarted between writes, end with the results a fresh query gives; the events
    replayed onto the snapshot give the same list."""

    def fault(i: int, proxy: FaultProxy) -> None:
        if i == 10:
            proxy.reset_all()
        elif i == 22:
            restartable.restart()

    run_scenario(restartable.url, transport, seed, 35, fault)


@pytest.mark.parametrize("transport", TRANSPORTS["pouchdb"])
def test_randomized_window_on_pouchdb(pouchdb_url, transport):
    """The randomized scenario on pouchdb-server (connections reset between writes; it
    cannot be restarted with its data): results equal a fresh query, events replay."""

    def fault(i: int, proxy: FaultProxy) -> None:
        if i % 15 == 7:
            proxy.reset_all()

    run_scenario(pouchdb_url, transport, 21, 40, fault)


@pytest.mark.soak
@pytest.mark.parametrize("transport", TRANSPORTS["embedded"])
def test_randomized_window_soak(restartable, transport):
    """The randomized scenario at a larger size: more seeds, more writes, killed restarts."""

    def fault(i: int, proxy: FaultProxy) -> None:
        if i % 25 == 5:
            proxy.reset_all()
        elif i % 50 == 30:
            restartable.restart(kill=True)

    for seed in range(100, 104):
        run_scenario(restartable.url, transport, seed, 200, fault, limit=8)


@pytest.mark.parametrize("transport", ["longpoll", "continuous"])
def test_snapshot_equals_query(db, transport):
    """Right after `live_query()` returns, `results` is what `query()` returns (unsorted:
    by `_id`; with `fields`: projected)."""
    db.bulk([{"_id": f"d{i:02d}", "type": "order" if i % 3 else "note", "n": i} for i in range(30)]).run()
    with db.live_query(SELECTOR, fields=["_id", "n"], transport=transport) as lq:
        assert lq.results == list(db.query(SELECTOR, fields=["_id", "n"]))


def test_document_leaving_the_selector_is_removed(db, server_kind):
    """A document that stops matching is removed from the results, with a `removed` event."""
    doc = db.create({"_id": "a", "type": "order"})
    with db.live_query(SELECTOR, reconnect=FAST) as lq:
        db.update({**doc, "type": "note"})
        events = next(lq.batches())
    assert [(e.kind, e.id, e.old_index) for e in events] == [("removed", "a", 0)]
    assert lq.results == []


@pytest.mark.parametrize("transport", ["longpoll", "continuous"])
def test_selector_feed_sees_documents_stop_matching(db, server_kind, transport):
    """With `feed="selector"` (filtered on the server), a held document that stops
    matching is still removed, and one added later is followed too."""
    db.create({"_id": "a", "type": "order"})
    with db.live_query(SELECTOR, feed="selector", transport=transport, reconnect=FAST) as lq:
        lq.start()
        b = db.create({"_id": "b", "type": "order"})
        assert lq.wait_for(lambda r: [d["_id"] for d in r] == ["a", "b"], SETTLE)
        db.update({**b, "type": "note"})
        assert lq.wait_for(lambda r: [d["_id"] for d in r] == ["a"], SETTLE)
        assert lq.subscription.stats.changes >= 1


def test_limited_window_refills_from_the_server(db):
    """When results leave a limited window and its margin runs out, the next documents
    come from a bounded query, not from a local copy."""
    db.create_index(["total"])
    docs = [db.create({"_id": f"d{i:02d}", "type": "order", "total": i}) for i in range(12)]
    with db.live_query(WINDOW, sort=[{"total": "desc"}], limit=3, margin=1, reconnect=FAST) as lq:
        lq.start()
        for doc in docs[-5:]:
            db.delete(doc)
        assert lq.wait_for(lambda r: [d["total"] for d in r] == [6, 5, 4], SETTLE)
        assert lq.refills >= 1 and len(lq._window) <= 4


def test_feed_that_cannot_resume_is_resynced(db):
    """A feed refused with a 400 (its seq unknown) is replaced: the query runs again and
    the difference comes as events."""
    db.create({"_id": "a", "type": "order"})
    calls: list[object] = []

    def handler(request):
        calls.append(request.since)
        if len(calls) == 1:
            db.create({"_id": "b", "type": "order"})  # written while the feed is refused
            return [BadRequest(400, "bad_request", "Malformed sequence")]
        return []

    with db.live_query(SELECTOR, transport=MockTransport(handler), reconnect=FAST) as lq:
        events = next(lq.batches())
        assert [(e.kind, e.id, e.new_index) for e in events] == [("added", "b", 1)]
        assert lq.resyncs == 1 and [d["_id"] for d in lq.results] == ["a", "b"]


def test_reserved_subscription_option_is_refused(db):
    """Options the live query sets itself (`since`, `selector`...) are a TypeError."""
    with pytest.raises(TypeError):
        db.live_query(SELECTOR, since=0)


def test_one_consumer(db):
    """A live query is consumed once: a second `start()` is a RuntimeError."""
    with db.live_query(SELECTOR) as lq:
        lq.start()
        with pytest.raises(RuntimeError):
            lq.start()
