"""The Subscription state machine, driven by MockTransport and hand-written fakes."""

from __future__ import annotations

import threading
import time

import pytest

from cloudsync.checkpoint import MemoryCheckpoint
from cloudsync.errors import NetworkError, NotFound, RateLimited, ServerError, SubscriptionError
from cloudsync.subscription import ReconnectPolicy, Subscription, SubscriptionState
from cloudsync.transports import (
    LastSeq,
    LongPollTransport,
    MockTransport,
    Transport,
    available_transports,
    create_transport,
    register_transport,
)

from ._feed_helpers import InfoDB, c, script, take


class FakeDB(InfoDB):
    def __init__(self, update_seq=100) -> None:
        super().__init__(update_seq)


class Sleeps:
    """An injectable sleep that records delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def fast_policy(**kw):
    return ReconnectPolicy(backoff=0.1, max_backoff=1.0, sleep=kw.pop("sleep", Sleeps()), random=lambda: 1.0, **kw)


def test_iterates_changes_in_order() -> None:
    """Changes come out in server order."""
    transport = script([c(1), c(2), c(3)])
    with Subscription(FakeDB(), transport, since=0) as sub:
        assert [x.seq for x in take(sub, 3)] == [1, 2, 3]


def test_since_now_resolved_once() -> None:
    """since='now' becomes update_seq once; reconnects send the resolved/delivered seq."""
    transport = script([], [c(101)], [])
    db = FakeDB(update_seq=100)
    with Subscription(db, transport, reconnect=fast_policy()) as sub:
        assert take(sub, 1)[0].seq == 101
        deadline = time.monotonic() + 2
        while len(transport.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)  # polling the mock's record: nothing to wait on
    assert [r.since for r in transport.requests[:3]] == [100, 100, 101]
    assert db.info_calls == 1


def test_clean_end_reconnects_without_backoff() -> None:
    """A clean end (an answer, even one with no change but its last_seq) reconnects at
    once: sleep is never called."""
    sleeps = Sleeps()
    transport = script([c(1)], [LastSeq(1)], [LastSeq(1)], [c(2)])
    with Subscription(FakeDB(), transport, since=0, reconnect=fast_policy(sleep=sleeps)) as sub:
        assert [x.seq for x in take(sub, 2)] == [1, 2]
    assert sleeps.delays == []


def test_empty_clean_ends_back_off() -> None:
    """Connections that end cleanly at once with nothing at all are not asked again in a
    tight loop: each such end in a row waits a growing backoff (not counted as an error)."""
    sleeps = Sleeps()
    transport = script([c(1)], [], [], [], [c(2)])
    with Subscription(FakeDB(), transport, since=0, reconnect=fast_policy(sleep=sleeps)) as sub:
        assert [x.seq for x in take(sub, 2)] == [1, 2]
        assert sub.stats.errors == 0
    assert sleeps.delays == [0.1, 0.2, 0.4]


def test_drop_resumes_from_last_delivered_seq() -> None:
    """After a failure the next connection starts from the last DELIVERED seq; what was
    queued is still delivered once and its replay dropped."""
    proceed, backing_off, gate = threading.Event(), threading.Event(), threading.Event()

    def first():
        yield c(1)
        proceed.wait(5)
        yield c(2)
        yield c(3)
        raise NetworkError("reset")

    reconnected = threading.Event()

    def second():
        reconnected.set()
        yield c(2)
        yield c(3)

    transport = script(first(), second())
    policy = fast_policy(sleep=lambda d: gate.wait(5))
    def states(old, new):
        return backing_off.set() if new is SubscriptionState.BACKING_OFF else None
    with Subscription(FakeDB(), transport, since=0, reconnect=policy, on_state_change=states) as sub:
        it = iter(sub)
        assert next(it).seq == 1
        proceed.set()
        assert backing_off.wait(2)
        gate.set()
        assert [next(it).seq, next(it).seq] == [2, 3]
        assert reconnected.wait(2)
        assert transport.requests[1].since == 1
        assert sub.stats.reconnects == 1
        assert sub.stats.changes == 3


def test_backoff_full_jitter_capped_and_reset_after_success() -> None:
    """Consecutive failures wait initial*2**n capped at max; a delivering connection resets."""
    sleeps = Sleeps()
    fail = [NetworkError("x")]
    got_first = threading.Event()

    def delivers_then_fails():
        yield c(1)
        got_first.wait(5)
        raise NetworkError("y")

    transport = script(fail, fail, fail, fail, fail, delivers_then_fails(), fail, [c(2)])
    with Subscription(FakeDB(), transport, since=0, reconnect=fast_policy(sleep=sleeps)) as sub:
        it = iter(sub)
        assert next(it).seq == 1
        got_first.set()
        assert next(it).seq == 2
    assert sleeps.delays == [0.1, 0.2, 0.4, 0.8, 1.0, 0.1, 0.2]


@pytest.mark.parametrize(
    ("error", "raised"), [(NotFound(404, "not_found"), NotFound), (ValueError("bug"), SubscriptionError)]
)
def test_terminal_error_raises_from_iterator(error, raised) -> None:
    """400/401/403/404 raise to the caller, no reconnect; a non-cloudsync exception from a
    transport (a bug) raises as a SubscriptionError caused by it."""
    sleeps = Sleeps()
    transport = script([c(1), error])
    sub = Subscription(FakeDB(), transport, since=0, reconnect=fast_policy(sleep=sleeps))
    it = iter(sub)
    assert next(it).seq == 1
    with pytest.raises(raised) as caught:
        next(it)
    assert caught.value is error or caught.value.__cause__ is error
    assert sub.state is SubscriptionState.CLOSED and sleeps.delays == [] and len(transport.requests) == 1


def test_transient_errors_retried_until_attempts_run_out() -> None:
    """429/5xx/network errors are retried; the last of `attempts` failures in a row is raised."""
    transport = script([ServerError(503)], [NetworkError("a")], [ServerError(500)])
    sub = Subscription(FakeDB(), transport, since=0, reconnect=fast_policy(attempts=3))
    with pytest.raises(ServerError):
        next(iter(sub))
    assert len(transport.requests) == 3


def test_rate_limit_retry_after_is_minimum_delay() -> None:
    """A 429's Retry-After is waited at least (capped at the policy max)."""
    sleeps = Sleeps()
    transport = script([RateLimited(429, retry_after=0.7)], [c(1)])
    with Subscription(FakeDB(), transport, since=0, reconnect=fast_policy(sleep=sleeps)) as sub:
        take(sub, 1)
    assert sleeps.delays == [0.7]


def test_transport_retry_hint_is_minimum_delay() -> None:
    """A transport's retry hint (SSE retry:) is a floor for the backoff."""
    sleeps = Sleeps()
    transport = script([NetworkError("x")], [c(1)])
    transport.retry_hint = lambda: 0.5
    with Subscription(FakeDB(), transport, since=0, reconnect=fast_policy(sleep=sleeps)) as sub:
        take(sub, 1)
    assert sleeps.delays == [0.5]


def test_close_during_backoff_returns_promptly() -> None:
    """close() interrupts a long backoff wait; the iterator ends."""
    backing_off = threading.Event()
    transport = script([NetworkError("x")])
    sub = Subscription(
        FakeDB(), transport, since=0,
        reconnect=ReconnectPolicy(backoff=60, max_backoff=60, random=lambda: 1.0),
        on_state_change=lambda old, new: backing_off.set() if new is SubscriptionState.BACKING_OFF else None,
    )
    result = []
    reader = threading.Thread(target=lambda: result.extend(sub), daemon=True)
    reader.start()
    assert backing_off.wait(2)
    started = time.monotonic()
    sub.close()
    assert time.monotonic() - started < 1.0
    reader.join(1.0)
    assert not reader.is_alive() and result == []


def test_close_from_another_thread_mid_read() -> None:
    """close() during a blocked read returns in under a second and no thread stays alive."""
    streaming = threading.Event()
    transport = script([])  # second connection blocks until the transport is closed
    sub = Subscription(FakeDB(), transport, since=0,
                       on_state_change=lambda o, n: streaming.set() if n is SubscriptionState.STREAMING and len(transport.requests) > 1 else None)
    consumer = threading.Thread(target=lambda: list(sub), daemon=True)
    consumer.start()
    assert streaming.wait(2)
    started = time.monotonic()
    sub.close()
    assert time.monotonic() - started < 1.0
    consumer.join(1.0)
    assert not consumer.is_alive()
    assert not any(t.is_alive() for t in sub._threads)


def test_dedupe_drops_replayed_id_rev() -> None:
    """A replay after a rewind is dropped by (id, rev); a new rev of the same doc is not."""
    transport = script([c(1, "a", "1-a"), c(2, "b", "1-b")], [c(1, "a", "1-a"), c(3, "a", "2-a")])
    with Subscription(FakeDB(), transport, since=0) as sub:
        got = take(sub, 3)
        assert [(x.id, x.rev) for x in got] == [("a", "1-a"), ("b", "1-b"), ("a", "2-a")]
        assert sub.stats.duplicates == 1


def test_stall_watchdog_aborts_silent_connection() -> None:
    """No byte within stall_timeout: the connection is aborted and counted as a stall;
    the next connection resumes."""
    def quiet():
        yield c(1)
        transport.closed.wait(5)  # silent until the watchdog closes the transport

    transport = script(quiet(), [c(2)])
    with Subscription(FakeDB(), transport, since=0, stall_timeout=0.3, reconnect=fast_policy()) as sub:
        assert [x.seq for x in take(sub, 2)] == [1, 2]
        assert sub.stats.stalls == 1
        assert transport.requests[1].since == 1


def test_abandoned_connection_late_events_dropped() -> None:
    """A transport whose close() does not unblock is abandoned; what it yields later
    (old generation) never reaches the application."""
    release, late_done, second_started = threading.Event(), threading.Event(), threading.Event()

    class Stubborn(Transport):
        def __init__(self):
            super().__init__()
            self.n = 0

        def stream(self, request, connection):
            self.n += 1
            if self.n == 1:
                yield c(1, "a")
                release.wait(5)  # ignores close()
                late_done.set()
                yield c(2, "late")
                return
            second_started.set()
            yield c(3, "b")
            release.wait(5)

    sub = Subscription(FakeDB(), Stubborn(), since=0, stall_timeout=0.2, reconnect=fast_policy())
    it = iter(sub)
    assert next(it).id == "a"
    assert next(it).id == "b"
    assert second_started.is_set()
    release.set()
    assert late_done.wait(2)
    from cloudsync._delivery import TIMEOUT

    assert sub._delivery.take(0.3) is TIMEOUT  # the late change is never handed out
    sub.close()
    assert sub.stats.changes == 2


def test_replacement_connection_is_watched_after_the_abandoned_one_returns() -> None:
    """An abandoned reader that returns late does not stop the watchdog from timing the
    connection that replaced it: a silent replacement is aborted as stalled too."""
    release_first, second_open, second_aborted = threading.Event(), threading.Event(), threading.Event()

    class Stubborn(Transport):
        def __init__(self):
            super().__init__()
            self.n = 0

        def stream(self, request, connection):
            self.n += 1
            if self.n == 1:
                release_first.wait(10)  # ignores the abort, returns once abandoned
                return
            if self.n == 2:
                connection.set_abort(second_aborted.set)
                second_open.set()
                second_aborted.wait(10)
                raise NetworkError("aborted")
            yield c(3)

    sub = Subscription(FakeDB(), Stubborn(), since=0, stall_timeout=0.3, reconnect=fast_policy())
    sub._ensure_started()
    try:
        assert second_open.wait(5)
        release_first.set()
        assert second_aborted.wait(5), "the replacement connection was never aborted as stalled"
        assert sub.stats.stalls == 2
    finally:
        release_first.set()
        sub.close()


def test_for_loop_over_a_temporary_subscription_delivers() -> None:
    """`for change in db.subscribe(...)`, with no other reference to the subscription,
    delivers its changes: the loop keeps the subscription alive."""
    db = FakeDB()
    seen = []
    for change in Subscription(db, script([c(1), c(2), c(3)]), since=0):
        seen.append(change.seq)
        if len(seen) == 3:
            break
    assert seen == [1, 2, 3]


def test_checkpoint_saved_only_after_loop_body() -> None:
    """With a store, a change's seq is saved when the loop asks for the next one."""
    store = MemoryCheckpoint()
    transport = script([c(1), c(2), c(3)])
    with Subscription(FakeDB(), transport, since=0, checkpoint=store) as sub:
        seen = []
        for change in sub:
            seen.append((change.seq, store.load()))
            if len(seen) == 3:
                break
    assert seen == [(1, 0), (2, 1), (3, 2)]
    assert store.load() == 2  # the change the loop broke on is redelivered next time


def test_resolved_start_saved_before_first_change() -> None:
    """since='now' resolved is saved at once: a crash before the first change loses nothing."""
    store = MemoryCheckpoint()
    streaming = threading.Event()
    transport = script([])
    sub = Subscription(FakeDB(update_seq=42), transport, checkpoint=store,
                       on_state_change=lambda o, n: streaming.set() if n is SubscriptionState.STREAMING else None)
    threading.Thread(target=lambda: list(sub), daemon=True).start()
    assert streaming.wait(2)
    assert store.load() == 42
    sub.close()


def test_checkpoint_wins_over_since() -> None:
    """A saved checkpoint is where the subscription starts, whatever since says."""
    transport = script([c(8)])
    with Subscription(FakeDB(), transport, since="now", checkpoint=MemoryCheckpoint(7)) as sub:
        take(sub, 1)
    assert transport.requests[0].since == 7


def test_manual_ack_commits_acknowledged_prefix_only() -> None:
    """Out-of-order acks commit only the leading acknowledged run."""
    store = MemoryCheckpoint()
    transport = script([c(1), c(2), c(3)])
    with Subscription(FakeDB(), transport, since=0, checkpoint=store, manual_ack=True) as sub:
        a, b, d = take(sub, 3)
        sub.ack(b)
        assert store.load() == 0  # the resolved start, saved before anything arrived
        sub.ack(a)
        assert store.load() == 2
        sub.ack(d)
        assert store.load() == 3


def test_last_seq_marker_advances_checkpoint() -> None:
    """A sparse feed's LastSeq advances the checkpoint with no change delivered."""
    store = MemoryCheckpoint()
    saved = threading.Event()

    class Store(MemoryCheckpoint):
        def save(self, seq):
            super().save(seq)
            if seq == 50:
                saved.set()

    store = Store()
    transport = script([LastSeq(50)])
    sub = Subscription(FakeDB(), transport, since=0, checkpoint=store)
    threading.Thread(target=lambda: list(sub), daemon=True).start()
    assert saved.wait(2)
    assert sub.last_seq == 50
    sub.close()


def test_bounded_queue_applies_backpressure() -> None:
    """The reader never queues more than queue_size items for a slow consumer."""
    transport = script([c(i) for i in range(1, 51)])
    sub = Subscription(FakeDB(), transport, since=0, queue_size=3)
    it = iter(sub)
    next(it)
    high = 0
    for _ in range(20):
        high = max(high, sub._reader.queued)
        time.sleep(0.005)  # give the reader time to (try to) overfill
    assert high <= 3
    assert [x.seq for x in [next(it) for _ in range(49)]] == list(range(2, 51))
    sub.close()


def test_callback_mode() -> None:
    """start(on_change) delivers on a daemon thread; acked after each callback."""
    store = MemoryCheckpoint()
    got, done = [], threading.Event()

    def on_change(change):
        got.append(change.seq)
        if len(got) == 3:
            done.set()

    sub = Subscription(FakeDB(), script([c(1), c(2), c(3)]), since=0, checkpoint=store).start(on_change)
    assert done.wait(2)
    sub.close()
    assert got == [1, 2, 3] and store.load() == 3


def test_callback_mode_terminal_error_to_on_error() -> None:
    """A terminal error goes to on_error and closes the subscription."""
    errors, done = [], threading.Event()
    sub = Subscription(FakeDB(), script([NotFound(404)]), since=0)
    sub.start(lambda ch: None, on_error=lambda e: (errors.append(e), done.set()))
    assert done.wait(2)
    assert isinstance(errors[0], NotFound)
    deadline = time.monotonic() + 1
    while sub.state is not SubscriptionState.CLOSED and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sub.state is SubscriptionState.CLOSED


def test_batches() -> None:
    """batches() groups up to max_size changes, not waiting past max_wait."""
    transport = script([c(i) for i in range(1, 6)])
    with Subscription(FakeDB(), transport, since=0) as sub:
        batches = []
        for batch in sub.batches(max_size=2, max_wait=0.2):
            batches.append([x.seq for x in batch])
            if sum(map(len, batches)) == 5:
                break
    assert batches == [[1, 2], [3, 4], [5]]


def test_state_changes_reported() -> None:
    """on_state_change sees connecting -> streaming ... -> closed."""
    states = []
    transport = script([c(1)])
    with Subscription(FakeDB(), transport, since=0, on_state_change=lambda o, n: states.append(n)) as sub:
        take(sub, 1)
    assert states[0] is SubscriptionState.CONNECTING and SubscriptionState.STREAMING in states and states[-1] is SubscriptionState.CLOSED


def test_request_carries_filters() -> None:
    """Every connection's request carries the subscription's filters and stall window."""
    transport = script([c(1)])
    with Subscription(FakeDB(), transport, since=0, selector={"t": 1}, include_docs=True, heartbeat=4, stall_grace=1) as sub:
        take(sub, 1)
    request = transport.requests[0]
    assert request.selector == {"t": 1} and request.include_docs and request.stall_timeout == 6.0


def test_registry() -> None:
    """Names resolve to transports; users register their own; unknown names fail."""
    assert isinstance(create_transport("longpoll"), LongPollTransport)
    register_transport("test-mock", lambda **kw: MockTransport(lambda r: []), replace=True)
    assert "test-mock" in available_transports()
    assert isinstance(create_transport("test-mock"), MockTransport)
    with pytest.raises(ValueError):
        create_transport("nope")
    with pytest.raises(ValueError):
        register_transport("longpoll", LongPollTransport)


def test_invalid_options() -> None:
    """selector with doc_ids, or doc_ids as a str, are rejected."""
    with pytest.raises(ValueError):
        Subscription(FakeDB(), "longpoll", selector={}, doc_ids=["a"])
    with pytest.raises(TypeError):
        Subscription(FakeDB(), "longpoll", doc_ids="abc")
