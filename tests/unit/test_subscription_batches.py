"""Subscription with batch-reading transports, automatic acks, the dedupe window and
the reachability probe during backoff."""

from __future__ import annotations

import threading

from cloudsync.checkpoint import MemoryCheckpoint
from cloudsync.errors import NetworkError
from cloudsync.subscription import ReconnectPolicy, Subscription
from cloudsync.transports import ContinuousTransport, LastSeq, Transport

from ._feed_helpers import InfoDB, c, take


class Batches(Transport):
    """Yields the scripted batches of each connection, then waits until closed."""

    def __init__(self, *connections) -> None:
        super().__init__()
        self.connections = list(connections)
        self.requests = []
        self.closed = threading.Event()

    def stream_batches(self, request, connection):
        self.requests.append(request)
        connection.set_abort(self.closed.set)
        if self.connections:
            yield from self.connections.pop(0)
        else:
            self.closed.wait(5)


def test_batches_from_transport_delivered_in_order() -> None:
    """Batches a transport yields arrive one change at a time, in order, markers applied."""
    transport = Batches([[c(1), c(2)], [LastSeq(3), c(4)], [c(5)]])
    with Subscription(InfoDB(), transport, since=0) as sub:
        assert [x.seq for x in take(sub, 4)] == [1, 2, 4, 5]


def test_large_batches_respect_queue_bound() -> None:
    """A batch larger than the room left is queued in slices: at most queue_size items
    are held between reader and consumer, the batch being delivered included."""
    transport = Batches([[c(i) for i in range(1, 6)], [c(i) for i in range(6, 11)], [c(11)]])
    sub = Subscription(InfoDB(), transport, since=0, queue_size=2)
    it = iter(sub)
    assert next(it).seq == 1
    with sub._reader.cond:
        assert sub._reader.queued <= 2
    assert [next(it).seq for _ in range(10)] == list(range(2, 12))
    sub.close()


def test_subclass_overriding_stream_is_used() -> None:
    """A subclass of a batch-reading transport that overrides only stream() is read
    through its stream(), not the parent's stream_batches()."""

    class Custom(ContinuousTransport):
        def stream(self, request, connection):
            yield c(7)

    sub = Subscription(InfoDB(), Custom(), since=0)
    try:
        assert next(iter(sub)).seq == 7
    finally:
        sub.close()


def test_auto_ack_commits_when_next_change_is_requested() -> None:
    """Without manual_ack a delivered change is committed when the loop asks for more;
    a marker after it waits for that too."""
    store = MemoryCheckpoint()
    transport = Batches([[c(1), LastSeq(2), c(3)]])
    with Subscription(InfoDB(), transport, since=0, checkpoint=store) as sub:
        it = iter(sub)
        assert next(it).seq == 1
        assert store.load() == 0
        assert next(it).seq == 3
        assert store.load() == 2  # change 1 acknowledged, then the marker
        assert sub.committed_seq == 2


def test_ack_of_last_handed_change_commits_early_in_auto_mode() -> None:
    """In automatic mode, ack(change) of the change just handed out commits it now;
    acking an older one is ignored (it is committed on the next pull anyway)."""
    store = MemoryCheckpoint()
    transport = Batches([[c(1), c(2)]])
    with Subscription(InfoDB(), transport, since=0, checkpoint=store) as sub:
        it = iter(sub)
        first = next(it)
        second = next(it)
        sub.ack(first)
        assert store.load() == 1
        sub.ack(second)
        assert store.load() == 2


def test_dedupe_remembers_at_least_the_window() -> None:
    """A replay of any of the last dedupe_window (id, rev) pairs is dropped."""
    first = [c(i, f"d{i}") for i in range(1, 9)]
    replay = [c(i, f"d{i}") for i in range(5, 9)] + [c(9, "new")]
    transport = Batches([first], [replay])
    with Subscription(InfoDB(), transport, since=0, dedupe_window=4) as sub:
        got = take(sub, 9)
        assert [x.id for x in got][-1] == "new" and sub.stats.duplicates == 4


def test_dedupe_tells_revisions_of_one_document_apart() -> None:
    """Replayed revisions of a document are dropped, its new revisions delivered."""
    first = [c(1, "a", "1-a"), c(2, "a", "2-a"), c(3, "b", "1-b")]
    replay = [c(1, "a", "1-a"), c(2, "a", "2-a"), c(4, "a", "3-a")]
    with Subscription(InfoDB(), Batches([first], [replay]), since=0) as sub:
        got = take(sub, 4)
        assert [(x.id, x.rev) for x in got] == [("a", "1-a"), ("a", "2-a"), ("b", "1-b"), ("a", "3-a")]
        assert sub.stats.duplicates == 2


def test_dedupe_window_bounded_for_a_document_updated_often() -> None:
    """Revisions of one document count against the window like any pair: after two
    windows' worth of newer revisions the oldest is forgotten, the newest remembered."""
    revs = [c(i, "hot", f"{i}-h") for i in range(1, 11)]
    replay = [c(1, "hot", "1-h"), c(10, "hot", "10-h"), c(11, "other")]
    with Subscription(InfoDB(), Batches([revs], [replay]), since=0, dedupe_window=4) as sub:
        got = take(sub, 12)
        assert [x.rev for x in got][-2:] == ["1-h", "1-x"] and sub.stats.duplicates == 1


def test_dedupe_remembers_every_revision_of_a_busy_document() -> None:
    """Hundreds of revisions of one document within the window: a replay of the first
    and of the last is dropped, a new revision delivered."""
    revs = [c(i, "busy", f"{i}-b") for i in range(1, 301)]
    replay = [c(1, "busy", "1-b"), c(300, "busy", "300-b"), c(301, "busy", "301-b")]
    with Subscription(InfoDB(), Batches([revs], [replay]), since=0) as sub:
        got = take(sub, 301)
        assert got[-1].rev == "301-b" and sub.stats.duplicates == 2


class Refused(Transport):
    """Connections fail as if nothing listened; reachable() answers from a script."""

    def __init__(self, answers) -> None:
        super().__init__()
        self.answers = list(answers)
        self.probes = 0
        self.connects = 0
        self.second = threading.Event()

    def reachable(self, timeout=0.25):
        self.probes += 1
        return self.answers.pop(0) if self.answers else True

    def stream(self, request, connection):
        self.connects += 1
        if self.connects >= 2:
            self.second.set()
        raise NetworkError("connect failed", sent=False) from ConnectionRefusedError(111, "refused")
        yield  # pragma: no cover


def test_refused_connection_probes_and_reconnects_when_reachable() -> None:
    """After a refused connection the 30 s backoff ends as soon as a probe connects."""
    transport = Refused([False, False, True])
    policy = ReconnectPolicy(backoff=30, max_backoff=30, random=lambda: 0.99, probe_interval=0.01)
    sub = Subscription(InfoDB(), transport, since=0, reconnect=policy)
    sub._ensure_started()
    try:
        assert transport.second.wait(5)
        assert transport.probes >= 3
    finally:
        sub.close()


def test_other_failures_do_not_probe() -> None:
    """A failure that is not a refused connection waits its backoff without probing."""

    class Reset(Refused):
        def stream(self, request, connection):
            self.connects += 1
            raise NetworkError("connection reset") from ConnectionResetError(104, "reset")
            yield  # pragma: no cover

    transport = Reset([])
    entered = threading.Event()
    policy = ReconnectPolicy(backoff=30, max_backoff=30, random=lambda: 0.99, probe_interval=0.01)
    sub = Subscription(InfoDB(), transport, since=0, reconnect=policy,
                       on_state_change=lambda old, new: entered.set() if new == "backing_off" else None)
    sub._ensure_started()
    try:
        assert entered.wait(5)
        assert not transport.second.wait(0.2)
        assert transport.probes == 0
    finally:
        sub.close()
