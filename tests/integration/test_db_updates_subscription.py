"""`client.subscribe_db_updates()`: a Subscription over the server's `_db_updates` feed
(the embedded server; pouchdb-server 4.2.0 answers the endpoint 400, unimplemented)."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator

import pytest

import cloudsync

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DEADLINE = 15.0
TRANSPORTS = ("longpoll", "continuous", "sse")
_names = itertools.count()


def _name() -> str:
    return f"dbu-client-{os.getpid()}-{next(_names)}"


class Events:
    """What a started subscription delivered, for the databases a test watches."""

    def __init__(self, sub: cloudsync.Subscription, *names: str) -> None:
        self.names = set(names)
        self.got: list[tuple[str, str]] = []
        self.all: list[cloudsync.DbUpdate] = []
        self.cond = threading.Condition()
        sub.start(self._take)

    def watch(self, *names: str) -> None:
        with self.cond:
            self.names.update(names)

    def _take(self, update: cloudsync.DbUpdate) -> None:
        with self.cond:
            self.all.append(update)
            if update.db_name in self.names:
                self.got.append((update.db_name, update.type))
            self.cond.notify_all()

    def wait_for(self, count: int) -> list[tuple[str, str]]:
        """The first `count` watched events, waited for with a deadline."""
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.got) >= count, DEADLINE), f"got only {self.got}"
            return list(self.got)


@pytest.fixture
def client(embedded_url: str) -> Iterator[cloudsync.Client]:
    with cloudsync.Client(embedded_url, timeout=(5, 30)) as c:
        yield c


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_follows_created_updated_and_deleted(client, transport):
    """Creating a database, writing to it and deleting it arrive as three DbUpdates, in
    order, on each transport."""
    name = _name()
    with client.subscribe_db_updates(transport, heartbeat=0.5) as sub:
        events = Events(sub, name)
        db = client.create_database(name)
        db.create({"a": 1})
        client.delete_database(name)
        assert events.wait_for(3) == [(name, "created"), (name, "updated"), (name, "deleted")]
        assert all(isinstance(u, cloudsync.DbUpdate) and u.seq is not None for u in events.all)


def test_since_a_seq_resumes_after_it(client):
    """A subscription from the `last_seq` an earlier one reached delivers only what came after."""
    first, second = _name(), _name()
    with client.subscribe_db_updates() as sub:
        events = Events(sub, first)
        client.create_database(first)
        events.wait_for(1)
        mark = sub.last_seq
    client.create_database(second)
    with client.subscribe_db_updates(since=mark) as sub:
        events = Events(sub, first, second)
        assert events.wait_for(1) == [(second, "created")]


def test_since_now_is_resolved_once_when_subscribing(client):
    """`since="now"` means when subscribe_db_updates() was called: an event between the
    call and the first read is delivered."""
    name = _name()
    sub = client.subscribe_db_updates()
    client.create_database(name)
    with sub:
        assert Events(sub, name).wait_for(1) == [(name, "created")]


def test_a_checkpoint_resumes_a_new_subscription(client):
    """A checkpoint store keeps the acknowledged position: a new subscription with it
    starts after the last event handled."""
    first, second = _name(), _name()
    store = cloudsync.MemoryCheckpoint()
    with client.subscribe_db_updates(checkpoint=store) as sub:
        events = Events(sub, first)
        client.create_database(first)
        events.wait_for(1)
    assert store.load() is not None
    client.create_database(second)
    with client.subscribe_db_updates(since=0, checkpoint=store) as sub:
        assert Events(sub, first, second).wait_for(1) == [(second, "created")]


def test_websocket_is_refused(client):
    """No server serves `_db_updates` over WebSocket: asking for it is a ValueError."""
    with pytest.raises(ValueError, match="WebSocket"):
        client.subscribe_db_updates("websocket")


def test_document_filters_are_refused(client):
    """`selector` and the other document filters make no sense for database events: TypeError."""
    with pytest.raises(TypeError, match="selector"):
        client.subscribe_db_updates(selector={"a": 1})


def test_anonymous_access_is_unauthorized(secured_url):
    """Reading `_db_updates` takes a server admin: without credentials the subscription
    fails at once with Unauthorized (it resolves `since="now"` first), no retrying."""
    with cloudsync.Client(secured_url, timeout=(5, 10)) as anonymous, pytest.raises(cloudsync.Unauthorized):
        anonymous.subscribe_db_updates()


def test_pouchdb_server_refuses_the_endpoint(pouchdb_url):
    """pouchdb-server 4.2.0 routes `_db_updates` but answers 400 ("TODO: implement" in
    express-pouchdb), so it cannot be followed there: the subscription fails at once with
    BadRequest instead of retrying. Following it is tested on the embedded server only."""
    with cloudsync.Client(pouchdb_url, timeout=(5, 10)) as client, pytest.raises(cloudsync.BadRequest):
        client.subscribe_db_updates()


@pytest.mark.slow
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_resumes_after_a_server_restart_without_loss_or_doubles(restartable, transport):
    """Across a restart of the server the subscription reconnects and delivers the events
    after it, each once: the log and its seqs survive the restart."""
    before, after, later = _name(), _name(), _name()
    policy = cloudsync.ReconnectPolicy(backoff=0.05, max_backoff=0.5)
    with cloudsync.Client(restartable.url, timeout=(5, 10)) as client, \
            client.subscribe_db_updates(transport, heartbeat=0.5, reconnect=policy) as sub:
        events = Events(sub, before, after, later)
        client.create_database(before)
        events.wait_for(1)
        restartable.restart()
        client.create_database(after)
        client.create_database(later)
        assert events.wait_for(3) == [(before, "created"), (after, "created"), (later, "created")]
        assert sub.stats.reconnects >= 1
        # Nothing more comes for these databases (no replay of `before`).
        events.watch(marker := _name())
        client.create_database(marker)
        assert events.wait_for(4)[3:] == [(marker, "created")]
