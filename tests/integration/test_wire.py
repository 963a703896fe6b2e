"""Connection handling against the embedded server: terminal errors end a WebSocket
subscription as they end an HTTP one, pings answered while the server streams, and dead
(half-open) connections noticed within one stall window on every transport."""

from __future__ import annotations

import os
import threading
import time
from urllib.parse import urlsplit

import pytest

import cloudsync
from cloudsync.errors import BadRequest, NotFound
from cloudsync.subscription import ReconnectPolicy
from cloudsync.transports import ChangesRequest, WebSocketTransport
from tests.faults.proxy import FaultProxy

pytestmark = pytest.mark.integration

FAST = ReconnectPolicy(backoff=0.01, max_backoff=0.05)
_names = iter(range(1_000_000))


@pytest.fixture
def edb(embedded_url):
    """A fresh database on the embedded server."""
    with cloudsync.Client(embedded_url, timeout=(5, 30)) as client:
        name = f"wire-{os.getpid()}-{next(_names)}"
        db = client.create_database(name)
        try:
            yield db
        finally:
            client.delete_database(name, missing_ok=True)


def first_error(sub, timeout: float = 10.0) -> BaseException | None:
    """What iterating ``sub`` raises (closing it after ``timeout`` if it keeps retrying)."""
    timer = threading.Timer(timeout, sub.close)
    timer.start()
    try:
        for _ in sub:
            pass
    except BaseException as exc:
        return exc
    finally:
        timer.cancel()
        sub.close()
    return None


@pytest.mark.parametrize("transport", ["websocket", "longpoll"])
def test_bad_selector_is_terminal_bad_request(edb, transport) -> None:
    """A selector the server refuses ends the subscription with BadRequest at once, on the
    WebSocket as on HTTP feeds, the server's reason in the message."""
    sub = edb.subscribe(transport, since=0, selector={"n": {"$nope": 1}}, reconnect=FAST)
    started = time.monotonic()
    error = first_error(sub)
    assert isinstance(error, BadRequest), error
    assert "$nope" in str(error)
    assert time.monotonic() - started < 5
    assert sub.stats.errors == 1


@pytest.mark.parametrize("transport", ["websocket", "longpoll"])
def test_missing_design_filter_is_terminal_not_found(edb, transport) -> None:
    """A design filter the server does not have ends the subscription with NotFound."""
    sub = edb.subscribe(transport, since=0, filter="app/by_type", reconnect=FAST)
    error = first_error(sub)
    assert isinstance(error, NotFound), error
    assert str(error).startswith("404 not_found: Filter functions are not supported")
    assert sub.stats.errors == 1


def test_websocket_missing_database_reads_like_http(embedded_url) -> None:
    """A WebSocket to a missing database raises ``404 not_found: Database does not exist. (GET url)``."""
    with cloudsync.Client(embedded_url) as client:
        transport = WebSocketTransport()
        transport.attach(client.database("no-such-db").changes_endpoint())
        with pytest.raises(NotFound) as info:
            list(transport.items(ChangesRequest()))
    host = urlsplit(embedded_url).netloc
    assert str(info.value).startswith(f"404 not_found: Database does not exist. (GET ws://{host}/no-such-db/_changes)")


def test_embedded_server_answers_pings_while_streaming(edb) -> None:
    """The server pongs while its feed waits (60 s heartbeat): a 0.5 s stall window with
    0.05 s pings survives many windows, and a change written then still arrives."""
    pongs = threading.Semaphore(0)

    class Counting(WebSocketTransport):
        def _alive(self, connection, count: int) -> None:
            super()._alive(connection, count)
            pongs.release()

    transport = Counting(min_heartbeat=0, ping_interval=0.05)
    transport.attach(edb.changes_endpoint())
    stream = transport.items(ChangesRequest(since=0, heartbeat=60, stall_timeout=0.5, timeout=None))
    got: list = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for change in stream:
                got.append(change)
                return
        except BaseException as exc:
            errors.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    for _ in range(40):  # ~40 frames read (the "[]" then pongs): at least 1.5 s of pings
        assert pongs.acquire(timeout=2), errors
    edb.create({"_id": "late"})
    reader.join(5)
    transport.close()
    assert not errors, errors
    assert [c.id for c in got] == ["late"]


@pytest.mark.parametrize("transport", ["continuous", "websocket", "sse", "longpoll"])
def test_half_open_connection_noticed_within_one_stall_window(embedded_url, edb, transport) -> None:
    """After the path goes silent (no FIN, no RST), a change written meanwhile arrives
    within one stall window (plus reconnect time), on every transport: the continuous
    feed's catch-up no longer waits a second window on a kept-alive connection."""
    parts = urlsplit(embedded_url)
    with FaultProxy(parts.hostname, parts.port) as proxy, cloudsync.Client(proxy.url, timeout=(5, 30)) as client:
        db = client.database(edb.name)
        options = {"min_heartbeat": 0} if transport == "websocket" else {}
        stall = 1.0
        sub = db.subscribe(transport, since=0, heartbeat=0.3, stall_timeout=stall, reconnect=FAST,
                           transport_options=options)
        try:
            it = iter(sub)
            for doc_id in ("a", "b"):  # "b" comes over the live feed, after any catch-up
                edb.create({"_id": doc_id})
                assert next(it).id == doc_id
            proxy.blackhole()
            started = time.monotonic()
            edb.create({"_id": "c"})
            assert next(it).id == "c"
            elapsed = time.monotonic() - started
        finally:
            sub.close()
    assert elapsed < stall * 1.6, f"{transport}: {elapsed:.2f}s for a {stall}s stall window"


def test_websocket_pings_notice_a_dead_path_despite_a_long_heartbeat(embedded_url, edb) -> None:
    """With Sync Gateway's 25 s heartbeat floor left on, the stall window derives from the
    ping interval (here 0.2 s: 1.25 x 0.2 + 0.5 = 0.75 s) and a frozen path is noticed
    within it, while a live quiet feed survives on pongs."""
    reads = threading.Semaphore(0)

    class Counting(WebSocketTransport):
        def _alive(self, connection, count: int) -> None:
            super()._alive(connection, count)
            reads.release()

    parts = urlsplit(embedded_url)
    with FaultProxy(parts.hostname, parts.port) as proxy, cloudsync.Client(proxy.url, timeout=(5, 30)) as client:
        db = client.database(edb.name)
        sub = db.subscribe(Counting(ping_interval=0.2), since=0, heartbeat=60, stall_grace=0.5, reconnect=FAST)
        assert sub.stall_timeout == pytest.approx(0.75)
        try:
            it = iter(sub)
            edb.create({"_id": "a"})
            assert next(it).id == "a"
            for _ in range(12):  # the "[]", then ~10 pongs 0.2 s apart: about three stall windows
                assert reads.acquire(timeout=2)
            assert sub.stats.errors == 0
            proxy.blackhole()
            started = time.monotonic()
            edb.create({"_id": "b"})
            assert next(it).id == "b"
            elapsed = time.monotonic() - started
        finally:
            sub.close()
    assert elapsed < 0.75 * 1.8, f"{elapsed:.2f}s"
