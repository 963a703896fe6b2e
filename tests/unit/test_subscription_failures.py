"""No error kills a subscription silently: retryable errors are retried with the real
backoff wait, others raise typed; failures are visible; a failed checkpoint save is not
fatal; the dedupe window drops only replays."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from cloudsync.checkpoint import MemoryCheckpoint
from cloudsync.errors import NetworkError, RateLimited, ServerError, SubscriptionError
from cloudsync.models import Change
from cloudsync.subscription import ReconnectPolicy, Subscription, SubscriptionState
from cloudsync.transports import MockTransport

from ._feed_helpers import InfoDB, c, script


def quick() -> ReconnectPolicy:
    """The real (interruptible) backoff wait, with short delays."""
    return ReconnectPolicy(backoff=0.01, max_backoff=0.02)


def leaf(seq, doc_id, *revs, deleted=False) -> Change:
    return Change(seq, doc_id, revs[0], deleted, None, tuple(revs))


@pytest.mark.parametrize(
    "error",
    [
        ServerError(503, "service_unavailable", "down for a moment"),
        ServerError(502, "bad_gateway", "upstream"),
        RateLimited(429, "too_many_requests", "slow down"),
        RateLimited(429, "too_many_requests", "slow down", retry_after=0.05),
    ],
    ids=["503", "502", "429", "429-retry-after"],
)
def test_http_error_on_a_feed_is_retried_with_the_real_backoff(error) -> None:
    """A 429/5xx answer on a feed backs off (the real wait, not an injected sleep) and
    the subscription goes on delivering."""
    transport = script([c(1)], [error], [c(2)])
    with Subscription(InfoDB(), transport, since=0, reconnect=quick()) as sub:
        it = iter(sub)
        assert [next(it).seq, next(it).seq] == [1, 2]
        assert sub.stats.errors == 1


def test_retry_after_is_a_floor_for_the_backoff() -> None:
    """A Retry-After hint on any error (503 too) is waited at least."""
    error = ServerError(503, "service_unavailable", "later")
    error.retry_after = 0.3  # type: ignore[attr-defined]
    transport = script([error], [c(1)])
    with Subscription(InfoDB(), transport, since=0, reconnect=quick()) as sub:
        started = time.monotonic()
        assert next(iter(sub)).seq == 1
        assert time.monotonic() - started >= 0.3


def test_retry_after_is_capped_by_max_retry_after() -> None:
    """A hint longer than max_retry_after waits only max_retry_after."""
    delays: list[float] = []
    policy = ReconnectPolicy(backoff=0.01, max_backoff=0.02, max_retry_after=2.0, sleep=delays.append)
    transport = script([RateLimited(429, retry_after=3600)], [c(1)])
    with Subscription(InfoDB(), transport, since=0, reconnect=policy) as sub:
        next(iter(sub))
    assert delays == [2.0]


def test_unexpected_exception_raises_subscription_error() -> None:
    """An exception that is not a cloudsync error ends the subscription with a typed
    SubscriptionError caused by it, never silence."""
    bug = KeyError("seq")
    transport = script([c(1), bug])
    sub = Subscription(InfoDB(), transport, since=0, reconnect=quick())
    it = iter(sub)
    next(it)
    with pytest.raises(SubscriptionError) as caught:
        next(it)
    assert caught.value.__cause__ is bug
    assert sub.state is SubscriptionState.CLOSED and sub.last_error is caught.value


def test_callback_mode_reports_an_unexpected_exception() -> None:
    """With start(), an unexpected exception reaches on_error as a SubscriptionError."""
    errors: list[BaseException] = []
    done = threading.Event()
    transport = script([TypeError("oops")])
    sub = Subscription(InfoDB(), transport, since=0, reconnect=quick())
    sub.start(lambda change: None, on_error=lambda exc: (errors.append(exc), done.set()))
    assert done.wait(5)
    assert isinstance(errors[0], SubscriptionError)
    assert isinstance(errors[0].__cause__, TypeError)


def test_repeated_failures_warn_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    """A subscription that keeps failing logs one WARNING (not one per failure) and
    reports its last error and state."""
    failing = threading.Event()

    def handler(request):
        if len(transport.requests) >= 5:
            failing.set()
        raise NetworkError("connection refused", sent=False)
        yield  # pragma: no cover

    transport = MockTransport(handler)
    caplog.set_level(logging.WARNING, logger="cloudsync.subscription")
    sub = Subscription(InfoDB(), transport, since=0, reconnect=quick())
    sub.start(lambda change: None)
    try:
        assert failing.wait(5)
        assert isinstance(sub.last_error, NetworkError)
        assert sub.state in (SubscriptionState.BACKING_OFF, SubscriptionState.CONNECTING)
    finally:
        sub.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "failed" in r.getMessage()]
    assert len(warnings) == 1
    assert "connection refused" in warnings[0].getMessage()


def test_recovery_clears_last_error() -> None:
    """Once a connection delivers again, last_error is None."""
    transport = script([NetworkError("reset")], [c(1)], [c(2)])
    with Subscription(InfoDB(), transport, since=0, reconnect=quick()) as sub:
        it = iter(sub)
        next(it)
        next(it)
        assert sub.last_error is None


def test_attempts_give_up_with_the_last_error() -> None:
    """A bounded policy raises the last error once it is exhausted."""
    transport = script(*[[NetworkError(f"fail {n}")] for n in range(10)])
    policy = ReconnectPolicy(backoff=0.001, max_backoff=0.002, attempts=4)
    sub = Subscription(InfoDB(), transport, since=0, reconnect=policy)
    with pytest.raises(NetworkError, match="fail 3"):
        next(iter(sub))


class FlakyStore(MemoryCheckpoint):
    """Fails its first ``failures`` saves."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.attempts = 0

    def save(self, seq) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise OSError("disk full")
        super().save(seq)


def test_failed_checkpoint_save_does_not_end_the_subscription(caplog: pytest.LogCaptureFixture) -> None:
    """A save that fails is logged at WARNING, delivery goes on, and a later commit saves."""
    store = FlakyStore(failures=2)
    transport = script([c(n) for n in range(1, 6)])
    caplog.set_level(logging.WARNING, logger="cloudsync.subscription")
    with Subscription(InfoDB(), transport, since=0, checkpoint=store) as sub:
        it = iter(sub)
        assert [next(it).seq for _ in range(5)] == [1, 2, 3, 4, 5]
        assert store.load() == 4
    assert any("could not save the checkpoint" in r.getMessage() for r in caplog.records)


def test_failed_final_save_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    """close() logs a final save that fails and returns normally."""

    class Broken(MemoryCheckpoint):
        def save_final(self, seq, timeout) -> None:
            raise OSError("gone")

    store = Broken()
    sub = Subscription(InfoDB(), script([c(1), c(2)]), since=0, checkpoint=store, checkpoint_every=100)
    it = iter(sub)
    next(it)
    next(it)
    caplog.set_level(logging.WARNING, logger="cloudsync.subscription")
    sub.close()
    assert any("on close" in r.getMessage() for r in caplog.records)


def test_new_conflict_leaf_is_delivered() -> None:
    """A row listing a new set of leaves of a document (style=all_docs) is a change."""
    transport = script([leaf(1, "a", "1-a"), leaf(2, "a", "1-a", "1-b")])
    with Subscription(InfoDB(), transport, since=0) as sub:
        it = iter(sub)
        assert [next(it).revs, next(it).revs] == [("1-a",), ("1-a", "1-b")]


def test_deleted_losing_branch_is_delivered() -> None:
    """Deleting a losing branch (its leaf becomes a tombstone rev) is a change."""
    transport = script([leaf(1, "a", "1-a", "1-b"), leaf(2, "a", "1-a", "2-b")])
    with Subscription(InfoDB(), transport, since=0) as sub:
        it = iter(sub)
        assert [next(it).seq, next(it).seq] == [1, 2]


def test_replay_listing_leaves_in_another_order_is_dropped() -> None:
    """A replayed row is a duplicate whatever order the server lists its leaves in."""
    transport = script([leaf(1, "a", "1-a", "1-b"), leaf(1, "a", "1-b", "1-a"), leaf(2, "b", "1-c")])
    with Subscription(InfoDB(), transport, since=0) as sub:
        it = iter(sub)
        assert [next(it).seq, next(it).seq] == [1, 2]
        assert sub.stats.duplicates == 1
