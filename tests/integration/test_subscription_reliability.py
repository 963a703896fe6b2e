"""Subscription reliability against real servers: conflict revisions are changes, not
replays; an unexpected exception inside a real transport ends the subscription typed;
a server that cannot be reached is reported, not retried silently."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

import cloudsync
from cloudsync.errors import NetworkError, SubscriptionError
from cloudsync.subscription import ReconnectPolicy, SubscriptionState
from cloudsync.transports import ContinuousTransport, LongPollTransport, SSETransport, WebSocketTransport

pytestmark = pytest.mark.integration

TRANSPORTS = {"pouchdb": ("longpoll", "continuous"), "embedded": ("longpoll", "continuous", "sse", "websocket")}
CLASSES = {"longpoll": LongPollTransport, "continuous": ContinuousTransport, "sse": SSETransport,
           "websocket": WebSocketTransport}
FAST = ReconnectPolicy(backoff=0.05, max_backoff=0.2)
LOSER = "1-" + "0" * 32  # sorts below any real revision: its branch loses


def options(name: str) -> dict:
    return {"min_heartbeat": 0} if name == "websocket" else {}


def next_within(it, timeout: float = 20.0):
    """The iterator's next change, or fail after ``timeout`` seconds."""
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(next(it)), daemon=True)
    thread.start()
    thread.join(timeout)
    assert result, f"no change within {timeout}s"
    return result[0]


@pytest.mark.parametrize("transport", ["longpoll", "continuous", "sse", "websocket"])
def test_conflict_leaves_and_their_deletion_are_delivered(db, server_kind, transport) -> None:
    """With style=all_docs, a new losing conflict revision and the deletion of that
    losing branch each arrive as a change, though the winning revision stays the same."""
    if transport not in TRANSPORTS[server_kind]:
        pytest.skip(f"{server_kind} has no {transport} feed")
    with db.subscribe(transport, since=0, query_params={"style": "all_docs"}, reconnect=FAST,
                      transport_options=options(transport)) as sub:
        it = iter(sub)
        winner = db.create({"_id": "doc", "v": 1})["_rev"]
        first = next_within(it)
        assert (first.id, set(first.revs)) == ("doc", {winner})
        db.bulk([{"_id": "doc", "_rev": LOSER, "v": 0}], new_edits=False).run()
        second = next_within(it)
        assert (second.id, set(second.revs)) == ("doc", {winner, LOSER})
        tombstone = db.delete("doc", rev=LOSER)
        third = next_within(it)
        assert (third.id, set(third.revs)) == ("doc", {winner, tombstone})
        assert sub.stats.duplicates == 0


def error_within(it, timeout: float = 20.0) -> BaseException:
    """What iterating ``it`` to its end raises, or fail after ``timeout`` seconds."""
    errors: list[BaseException] = []

    def drain() -> None:
        try:
            for _ in it:
                pass
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    thread.join(timeout)
    assert errors, f"no error within {timeout}s"
    return errors[0]


class Exploding:
    """Mixed into a real transport: its second batch raises an exception that is not a
    cloudsync error, as a bug in a transport would."""

    batches_read = 0

    def stream_batches(self, request, connection):
        for batch in super().stream_batches(request, connection):  # type: ignore[misc]
            self.batches_read += 1
            if self.batches_read == 2:
                raise RuntimeError("a bug in the transport")
            yield batch


@pytest.mark.parametrize("transport", ["longpoll", "continuous", "sse", "websocket"])
def test_unexpected_exception_in_a_transport_raises_typed(embedded_url, transport) -> None:
    """An exception from inside a real transport ends the subscription with a
    SubscriptionError caused by it, never a reader that dies silently."""
    instance = type(f"Exploding{transport}", (Exploding, CLASSES[transport]), {})(**options(transport))
    with cloudsync.Client(embedded_url) as client:
        db = client.create_database(f"explode-{transport}")
        try:
            db.create({"_id": "a"})
            with db.subscribe(instance, since=0, reconnect=FAST) as sub:
                it = iter(sub)
                assert next_within(it).id == "a"
                db.create({"_id": "b"})
                error = error_within(it)
                assert isinstance(error, SubscriptionError)
                assert isinstance(error.__cause__, RuntimeError)
                assert sub.state is SubscriptionState.CLOSED
        finally:
            client.delete_database(f"explode-{transport}", missing_ok=True)


def test_unreachable_server_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    """A subscription to a port nobody listens on logs a WARNING and reports the error
    in last_error while it keeps retrying."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    caplog.set_level(logging.WARNING, logger="cloudsync.subscription")
    with cloudsync.Client(f"http://127.0.0.1:{port}") as client:
        sub = client.database("nowhere").subscribe("longpoll", since=0, reconnect=FAST)
        sub.start(lambda change: None)
        try:
            deadline = time.monotonic() + 10
            while sub.last_error is None and time.monotonic() < deadline:
                time.sleep(0.01)
            assert isinstance(sub.last_error, NetworkError)
        finally:
            sub.close()
    assert any(r.levelno == logging.WARNING and "retrying" in r.getMessage() for r in caplog.records)
