"""The Transport contract: the hooks' defaults, items as liveness, abort registration
racing close(), and a transport that never touches the Database."""

from __future__ import annotations

import threading

import pytest
import responses

from cloudsync.errors import NotFound
from cloudsync.subscription import ReconnectPolicy, Subscription
from cloudsync.transports import ChangesRequest, FeedConnection, LastSeq, Transport

from ._feed_helpers import URL, FakeDB, InfoDB, bound, c, take

FAST = ReconnectPolicy(backoff=0.01, max_backoff=0.05)


class OnlyStream(Transport):
    """The smallest transport: `stream` and nothing else."""

    def stream(self, request, connection):
        yield c(1)


class OnlyBatches(Transport):
    """A transport that reads batches."""

    def stream_batches(self, request, connection):
        yield [c(1), c(2)]
        yield [LastSeq(3)]


class Paced(Transport):
    """Yields a change every `pace` seconds, reporting no bytes; `connections` counts
    the connections opened."""

    def __init__(self, pace: float | None, count: int = 10) -> None:
        super().__init__()
        self.pace, self.count = pace, count
        self.connections = 0
        self.reconnected = threading.Event()
        self.aborted = threading.Event()

    def stream(self, request, connection):
        self.connections += 1
        if self.connections > 1:
            self.reconnected.set()
        connection.set_abort(self.aborted.set)
        if self.pace is None:  # silent: waits for close()
            self.aborted.wait(5)
            return
        for n in range(1, self.count + 1):
            if self.aborted.wait(self.pace):
                return
            yield c(n)
        self.aborted.wait(5)


def test_default_reads_batches_follows_the_override() -> None:
    """reads_batches() is False for a transport that overrides stream, True for one that
    overrides stream_batches only."""
    assert OnlyStream().reads_batches() is False
    assert OnlyBatches().reads_batches() is True


def test_default_retry_hint_is_none() -> None:
    """Without a server hint there is no minimum reconnect delay."""
    assert OnlyStream().retry_hint() is None


def test_default_effective_heartbeat_is_clamped() -> None:
    """effective_heartbeat() keeps a request within min_heartbeat..max_heartbeat."""
    transport = OnlyStream()
    assert transport.effective_heartbeat(10) == 10
    assert transport.effective_heartbeat(300) == transport.max_heartbeat == 60


def test_default_reachable_is_unknown_without_an_endpoint() -> None:
    """A transport never attached to an HTTP feed cannot tell: None."""
    assert OnlyStream().reachable() is None


def test_items_flattens_a_batch_readers_batches() -> None:
    """items() runs one connection of a batch-reading transport item by item."""
    assert list(OnlyBatches().items(ChangesRequest())) == [c(1), c(2), LastSeq(3)]


def test_yielded_items_count_as_alive() -> None:
    """A transport that yields a change every 0.1 s and reports no bytes is not aborted
    by a 0.3 s stall window: one connection, no stall."""
    transport = Paced(pace=0.1)
    with Subscription(InfoDB(), transport, since=0, stall_timeout=0.3, reconnect=FAST) as sub:
        assert [x.seq for x in take(sub, 10)] == list(range(1, 11))
        assert sub.stats.stalls == 0
    assert transport.connections == 1


def test_silence_without_items_or_bytes_is_a_stall() -> None:
    """A transport that yields nothing and reports nothing is aborted after the stall
    window, and the subscription connects again."""
    transport = Paced(pace=None)
    with Subscription(InfoDB(), transport, since=0, stall_timeout=0.3, reconnect=FAST) as sub:
        sub._ensure_started()
        assert transport.reconnected.wait(5)
        assert transport.aborted.is_set() and sub.stats.stalls >= 1


def connect_in_background(transport: Transport) -> threading.Thread:
    """One connection of `transport`, read to its end on a thread of its own."""
    reader = threading.Thread(target=lambda: list(transport.items(ChangesRequest())), daemon=True)
    reader.start()
    return reader


def test_close_racing_the_connect_is_not_lost() -> None:
    """close() between the start of a connection and its set_abort(): set_abort returns
    False and calls the abort at once."""
    reached, proceed = threading.Event(), threading.Event()
    results: list[bool] = []
    aborted: list[bool] = []

    class Racing(Transport):
        def stream(self, request, connection):
            reached.set()
            proceed.wait(5)
            results.append(connection.set_abort(lambda: aborted.append(True)))
            return
            yield  # pragma: no cover

    transport = Racing()
    reader = connect_in_background(transport)
    assert reached.wait(5)
    transport.close()
    proceed.set()
    reader.join(5)
    assert results == [False] and aborted == [True]


def test_close_runs_the_registered_abort() -> None:
    """close() from another thread runs what the open connection registered."""
    registered, aborted = threading.Event(), threading.Event()

    class Blocking(Transport):
        def stream(self, request, connection):
            connection.set_abort(aborted.set)
            registered.set()
            aborted.wait(5)
            return
            yield  # pragma: no cover

    transport = Blocking()
    reader = connect_in_background(transport)
    assert registered.wait(5)
    transport.close()
    reader.join(5)
    assert aborted.is_set() and not reader.is_alive()


def test_connection_begun_after_shutdown_starts_closed() -> None:
    """After shutdown() (a closing subscription) a new connection is closed from the
    start: set_abort fails and aborts, so no connection opens after close()."""
    results: list[bool] = []
    aborted: list[bool] = []

    class Recording(Transport):
        def stream(self, request, connection):
            results.append(connection.set_abort(lambda: aborted.append(True)))
            return
            yield  # pragma: no cover

    transport = Recording()
    transport.shutdown()
    assert list(transport.items(ChangesRequest())) == []
    assert results == [False] and aborted == [True]


class Watched:
    """A Database that records who reads which of its attributes (by thread name)."""

    def __init__(self, database) -> None:
        object.__setattr__(self, "database", database)
        object.__setattr__(self, "reads", [])

    def __getattribute__(self, name: str):
        if name in ("database", "reads"):
            return object.__getattribute__(self, name)
        object.__getattribute__(self, "reads").append((threading.current_thread().name, name))
        return getattr(object.__getattribute__(self, "database"), name)


def test_a_transport_never_touches_the_database() -> None:
    """The transport gets the feed's URL and headers from its FeedConnection: the reader
    thread never reads an attribute of the Database."""
    seen: list[tuple[str, dict]] = []

    class Looking(Transport):
        def stream(self, request, connection):
            seen.append((connection.url, connection.headers()))
            yield c(1)

    database = Watched(FakeDB())
    with Subscription(database, Looking(), since=0) as sub:
        assert [x.seq for x in take(sub, 1)] == [1]
    assert seen[0][0] == URL and seen[0][1]["Accept-Encoding"] == "identity"
    assert [name for thread, name in database.reads if thread.startswith("cloudsync-")] == []


@responses.activate
def test_connection_open_maps_a_status_to_its_error() -> None:
    """A custom transport's connection.open() goes through the HTTP layer: a 404 raises
    NotFound with CouchDB's reason."""
    responses.get(URL, status=404, json={"error": "not_found", "reason": "Database does not exist."})

    class Opening(Transport):
        def stream(self, request, connection: FeedConnection):
            connection.open("GET", params={"feed": "normal"})
            return
            yield  # pragma: no cover

    with pytest.raises(NotFound, match="Database does not exist"):
        list(bound(Opening()).items(ChangesRequest()))
