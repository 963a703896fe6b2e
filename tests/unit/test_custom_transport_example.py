"""examples/custom_transport.py, run for real: a Subscription reads changes through it from
a line relay this module starts; docs/transports.md shows the same file."""

from __future__ import annotations

import importlib.util
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudsync.errors import InvalidResponse
from cloudsync.subscription import ReconnectPolicy, Subscription

from ._feed_helpers import InfoDB, take
from ._sockets import ScriptServer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "custom_transport.py"
FAST = ReconnectPolicy(backoff=0.01, max_backoff=0.05)


def load_example():
    spec = importlib.util.spec_from_file_location("custom_transport_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Relay(ScriptServer):
    """A line relay on 127.0.0.1: reads `SINCE <json>`, sends the rows after it, one per
    line, then holds the connection open (or closes it, when `drop` is set)."""

    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows
        self.sinces: list[object] = []
        self.asked = threading.Condition()
        self.drop = threading.Event()
        self.peer_closed = threading.Event()
        super().__init__(script=None)

    def _handle(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:
            try:
                since = json.loads(lines.readline().split(b" ", 1)[1])
                with self.asked:
                    self.sinces.append(since)
                    self.asked.notify_all()
                after = [row for row in self.rows if since is None or row["seq"] > since]
                conn.sendall(b"".join(json.dumps(row).encode() + b"\n" for row in after))
                if self.drop.is_set():
                    return
                if lines.readline() == b"":  # blocks until the client goes away
                    self.peer_closed.set()
            except OSError:
                self.peer_closed.set()

    def wait_since(self, since: object, timeout: float = 5.0) -> bool:
        """Wait until a connection asks from `since`."""
        with self.asked:
            return self.asked.wait_for(lambda: since in self.sinces, timeout)


def rows(first: int, last: int) -> list[dict]:
    return [{"seq": n, "id": f"d{n}", "changes": [{"rev": f"1-{n}"}]} for n in range(first, last + 1)]


@pytest.fixture
def relay() -> Iterator[Relay]:
    server = Relay(rows(1, 3))
    try:
        yield server
    finally:
        server.close()


def subscribe(relay: Relay, **options) -> Subscription:
    transport = load_example().LineRelayTransport("127.0.0.1", relay.port)
    return Subscription(InfoDB(), transport, reconnect=FAST, **options)


def test_example_is_short_and_uses_no_underscore_names() -> None:
    """The example stays a complete transport in at most 30 lines, with no private names."""
    text = EXAMPLE.read_text()
    assert len(text.splitlines()) <= 30
    assert not re.findall(r"(?<![\w.])_[a-z]\w*|\._[a-z]\w*", text)


def test_example_delivers_the_relays_changes(relay: Relay) -> None:
    """A Subscription with the example transport delivers the relay's changes in order."""
    with subscribe(relay, since=None) as sub:
        assert [change.id for change in take(sub, 3)] == ["d1", "d2", "d3"]
    assert relay.sinces[0] is None


def test_example_resumes_from_the_last_delivered_seq(relay: Relay) -> None:
    """After the relay drops the connection, the next one asks from the last seq delivered
    and nothing is delivered twice."""
    relay.drop.set()
    with subscribe(relay, since=0) as sub:
        first = take(sub, 3)
        assert relay.wait_since(3)
        relay.rows.extend(rows(4, 5))
        second = take(sub, 2)
    assert [c.seq for c in first + second] == [1, 2, 3, 4, 5]
    assert relay.sinces[0] == 0


def test_example_close_returns_promptly_while_blocked_in_a_read(relay: Relay) -> None:
    """close() returns at once while the transport waits in readline(), and the relay sees
    the connection go away."""
    sub = subscribe(relay, since=None)
    take(sub, 3)  # the transport now blocks waiting for a fourth line
    started = time.monotonic()
    sub.close()
    assert time.monotonic() - started < 1.0
    assert relay.peer_closed.wait(5)


def test_example_reports_a_malformed_line_as_a_retryable_invalid_response() -> None:
    """A relay line that is not a change row is an `InvalidResponse` (retried by the
    subscription), not an unexpected exception that would end it."""
    server = Relay(rows(1, 1))
    server.rows.append({"seq": 2, "no id": True})
    try:
        with subscribe(server, since=None) as sub:
            assert [change.id for change in take(sub, 1)] == ["d1"]
            assert server.wait_since(1)  # it reconnected after the bad line
            assert isinstance(sub.last_error, InvalidResponse)
    finally:
        server.close()


def test_docs_show_the_example_file() -> None:
    """docs/transports.md's custom-transport example is examples/custom_transport.py."""
    docs = (ROOT / "docs" / "transports.md").read_text()
    block = re.search(r"<!-- examples/custom_transport.py -->\n```python\n(.*?)```", docs, re.S)
    assert block is not None, "the marked example block is missing from docs/transports.md"
    assert block.group(1) == EXAMPLE.read_text()
