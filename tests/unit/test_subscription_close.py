"""close() means stop: nothing is delivered and nothing is saved once it has returned, in
every delivery style; it is bounded; a dropped subscription stops its threads."""

from __future__ import annotations

import gc
import http.server
import threading
import time
from collections.abc import Iterator

import pytest

import cloudsync
from cloudsync.checkpoint import FileCheckpoint, LocalDocCheckpoint, MemoryCheckpoint
from cloudsync.errors import SubscriptionError
from cloudsync.subscription import ReconnectPolicy, Subscription
from cloudsync.transports import MockTransport

from ._feed_helpers import InfoDB, c, script


def endless() -> MockTransport:
    """A transport that yields changes as fast as it can until it is closed."""

    def handler(request) -> Iterator[object]:
        n = int(request.since or 0)
        while not transport.closed.is_set():
            n += 1
            yield c(n, f"doc-{n}", f"1-{n}")

    transport = MockTransport(handler)
    return transport


def handle(got: list[object], change: object) -> None:
    """A consumer's work: a millisecond per change, so changes stay queued behind it."""
    time.sleep(0.001)
    got.append(change)


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


class RecordingStore(MemoryCheckpoint):
    """Remembers every save, and whether close() had returned when it happened."""

    def __init__(self) -> None:
        super().__init__()
        self.closed_returned = False
        self.late_saves: list[object] = []

    def save(self, seq) -> None:
        if self.closed_returned:
            self.late_saves.append(seq)
        super().save(seq)


def consume_then_close(sub: Subscription, consume) -> tuple[int, int]:
    """Run ``consume(got)`` on a thread until it has handled 200 changes, close() the
    subscription, and let the consumer end: (changes it got, changes delivered when
    close() returned)."""
    got: list[object] = []
    consumer = threading.Thread(target=consume, args=(got,), daemon=True)
    consumer.start()
    assert wait_for(lambda: len(got) > 200)
    sub.close()
    delivered = sub.stats.changes
    consumer.join(2)
    assert not consumer.is_alive()
    return len(got), delivered


def test_iterator_hands_out_nothing_after_close_returns() -> None:
    """Every change the iterator hands out was handed out before close() returned."""
    sub = Subscription(InfoDB(), endless(), since=0)

    def consume(got: list[object]) -> None:
        for change in sub:
            handle(got, change)

    got, delivered = consume_then_close(sub, consume)
    assert got == delivered


def test_callback_starts_nothing_after_close_returns() -> None:
    """No on_change call starts after close() returns (one under way may finish)."""
    sub = Subscription(InfoDB(), endless(), since=0)
    calls: list[object] = []
    sub.start(lambda change: handle(calls, change))
    assert wait_for(lambda: len(calls) > 200)
    sub.close()
    delivered = sub.stats.changes
    assert sub.join(2)
    assert len(calls) == delivered


def test_batches_hand_out_nothing_after_close_returns() -> None:
    """Every change in the batches handed out was handed out before close() returned."""
    sub = Subscription(InfoDB(), endless(), since=0)

    def consume(got: list[object]) -> None:
        for batch in sub.batches(max_size=50, max_wait=0.01):
            for change in batch:
                handle(got, change)

    got, delivered = consume_then_close(sub, consume)
    assert got == delivered


def test_checkpoint_not_written_after_close_returns() -> None:
    """Once close() has returned the subscription never saves its checkpoint again."""
    store = RecordingStore()
    sub = Subscription(InfoDB(), endless(), since=0, checkpoint=store)
    consumer = threading.Thread(target=lambda: [None for _ in sub], daemon=True)
    consumer.start()
    assert wait_for(lambda: (store.load() or 0) > 1000)
    sub.close()
    store.closed_returned = True
    consumer.join(2)
    assert not consumer.is_alive()
    assert store.late_saves == []


def test_close_saves_the_last_acknowledged_position() -> None:
    """close() saves the seq of the last change the application acknowledged, not the
    one it was handed last (which it may not have handled)."""
    store = MemoryCheckpoint()
    sub = Subscription(InfoDB(), endless(), since=0, checkpoint=store, checkpoint_every=1000)
    it = iter(sub)
    first, second = next(it), next(it)
    sub.close()
    assert (first.seq, second.seq) == (1, 2)
    assert store.load() == 1


def test_close_with_timeout_waits_for_a_running_callback() -> None:
    """close(timeout=...) returns once an on_change call under way has returned."""
    entered, finished = threading.Event(), threading.Event()

    def slow(change) -> None:
        entered.set()
        time.sleep(0.3)  # the work being done, not a wait for an event
        finished.set()

    sub = Subscription(InfoDB(), endless(), since=0)
    sub.start(slow)
    assert entered.wait(5)
    sub.close(timeout=5)
    assert finished.is_set()
    assert sub.join(0)


def test_close_does_not_wait_for_a_callback_without_timeout() -> None:
    """close() alone returns in under a second while on_change is still running."""
    entered, release = threading.Event(), threading.Event()

    def blocked(change) -> None:
        entered.set()
        release.wait(10)

    sub = Subscription(InfoDB(), endless(), since=0)
    sub.start(blocked)
    assert entered.wait(5)
    started = time.monotonic()
    sub.close()
    assert time.monotonic() - started < 1.0
    assert not sub.join(0)
    release.set()
    assert sub.join(5)


class HungOnPut(http.server.BaseHTTPRequestHandler):
    """GET answers 404; the first PUT is answered, later PUTs never are."""

    puts = 0
    release = threading.Event()

    def do_GET(self) -> None:  # noqa: N802
        body = b'{"error":"not_found","reason":"missing"}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).puts += 1
        if type(self).puts > 1:
            type(self).release.wait(30)
            return
        body = b'{"ok":true,"id":"_local/cp","rev":"0-1"}'
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hung_server() -> Iterator[str]:
    HungOnPut.puts = 0
    HungOnPut.release = threading.Event()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HungOnPut)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        HungOnPut.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_close_is_bounded_when_the_final_save_hangs(hung_server: str) -> None:
    """With a _local/ checkpoint on a server that stopped answering, close() returns in
    under a second; the unsaved position is logged, not raised."""
    with cloudsync.Client(hung_server) as client:
        store = LocalDocCheckpoint(client.database("db"), "cp")
        sub = Subscription(InfoDB(), endless(), since=0, checkpoint=store, checkpoint_every=10**9)
        it = iter(sub)
        next(it)
        next(it)  # acknowledges the first: the final save has something to write
        started = time.monotonic()
        sub.close()
        assert time.monotonic() - started < 1.0
    assert HungOnPut.puts == 2


def test_close_is_bounded_while_the_consumer_is_stuck_saving(hung_server: str) -> None:
    """close() returns in under a second while the consumer's own checkpoint save waits
    on a hung server, and the consumer hands out nothing more afterwards."""
    with cloudsync.Client(hung_server, retry=cloudsync.RetryPolicy.never()) as client:
        store = LocalDocCheckpoint(client.database("db"), "cp")
        sub = Subscription(InfoDB(), endless(), since=0, checkpoint=store)
        got: list[object] = []
        consumer = threading.Thread(target=lambda: got.extend(sub), daemon=True)
        consumer.start()
        assert wait_for(lambda: HungOnPut.puts >= 2)
        started = time.monotonic()
        sub.close()
        assert time.monotonic() - started < 1.0
        delivered = sub.stats.changes
        HungOnPut.release.set()
        consumer.join(5)
        assert not consumer.is_alive()
        assert len(got) == delivered


def test_dropped_subscription_stops_its_threads() -> None:
    """A subscription with no reference left is collected and its threads end."""
    sub = Subscription(InfoDB(), endless(), since=0, reconnect=ReconnectPolicy(backoff=0.01))
    it = iter(sub)
    next(it)
    threads = list(sub._threads)
    assert threads and all(t.is_alive() for t in threads)
    del sub, it

    def collected_and_stopped() -> bool:
        # Collect on every poll: a reader thread busy in the subscription at the moment of
        # one collection keeps it alive until the next.
        gc.collect()
        return not any(t.is_alive() for t in threads)

    assert wait_for(collected_and_stopped, timeout=10)


def test_started_subscription_without_reference_keeps_delivering() -> None:
    """A subscription delivering to a callback is not collected while it runs."""
    collected = threading.Event()
    calls: list[object] = []
    errors: list[BaseException] = []

    def on_change(change) -> None:
        collected.wait(5)
        calls.append(change)
        if len(calls) == 3000:
            raise RuntimeError("enough")  # ends the subscription through on_error

    Subscription(InfoDB(), endless(), since=0).start(on_change, on_error=errors.append)
    gc.collect()
    collected.set()
    assert wait_for(lambda: bool(errors))
    assert len(calls) == 3000


def test_closed_iterator_ends() -> None:
    """next() after close() raises StopIteration at once."""
    sub = Subscription(InfoDB(), endless(), since=0)
    it = iter(sub)
    next(it)
    sub.close()
    with pytest.raises(StopIteration):
        next(it)


def test_queue_size_bounds_the_items_held() -> None:
    """A slow consumer never has more than queue_size items held for it."""
    sub = Subscription(InfoDB(), endless(), since=0, queue_size=50)
    it = iter(sub)
    high = 0
    for _ in range(500):
        next(it)
        high = max(high, sub._reader.queued)
    sub.close()
    assert 0 < high <= 50


def test_close_writes_a_file_checkpoint_kept_for_its_interval(tmp_path) -> None:
    """A FileCheckpoint that held saves back for its interval gets the last acknowledged
    position on close()."""
    store = FileCheckpoint(tmp_path / "cp.json", interval=60)
    sub = Subscription(InfoDB(), endless(), since=0, checkpoint=store)
    it = iter(sub)
    for _ in range(50):
        next(it)
    sub.close()
    assert sub.committed_seq == 49
    assert FileCheckpoint(tmp_path / "cp.json").load() == 49


def test_batches_hand_out_what_was_taken_before_an_error() -> None:
    """A terminal error after some changes were taken for a batch: that batch is handed
    out first, the error raised by the next request for a batch."""
    sub = Subscription(InfoDB(), script([c(1), c(2), KeyError("bug")]), since=0)
    batches = sub.batches(max_size=10, max_wait=2)
    assert [x.seq for x in next(batches)] == [1, 2]
    with pytest.raises(SubscriptionError):
        next(batches)
    assert sub.last_seq == 2
