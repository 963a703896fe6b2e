"""close() in the middle of a fault, with changes still queued: it returns within a second
and nothing is handed out after it (DESIGN: "nothing delivered after it")."""

from __future__ import annotations

import threading
import time

import pytest

import cloudsync
from tests.faults import scenario
from tests.faults.proxy import FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

BACKLOG = 600


@pytest.mark.parametrize("transport", scenario.TRANSPORTS["embedded"])
def test_close_after_reset_with_a_queued_backlog(embedded_url: str, transport: str) -> None:
    """A slow consumer has a backlog queued; the connection is reset and close() is called
    from another thread: close() returns in under a second and the loop gets nothing more."""
    direct = cloudsync.Client(embedded_url)
    name = f"faults-close-{transport}-{time.monotonic_ns() % 10**9}"
    db = direct.create_database(name)
    db.bulk([{"_id": f"b{i:04d}"} for i in range(BACKLOG)]).run()
    host, port = embedded_url.rsplit(":", 1)
    got: list[float] = []
    cond = threading.Condition()
    work = threading.Event()  # never set: its wait() is the consumer's simulated work
    with FaultProxy(host.split("//", 1)[1], int(port)) as proxy, cloudsync.Client(proxy.url) as client:
        options = {"min_heartbeat": 0} if transport == "websocket" else {}
        sub = client.database(name).subscribe(transport, since=0, heartbeat=scenario.HEARTBEAT,
                                              stall_timeout=scenario.STALL_TIMEOUT, reconnect=scenario.RECONNECT,
                                              transport_options=options)

        def consume() -> None:
            # The time each next() was called: one called after close() returned must end the loop.
            changes = iter(sub)
            while True:
                asked = time.monotonic()
                if next(changes, None) is None:
                    return
                with cond:
                    got.append(asked)
                    cond.notify_all()
                work.wait(0.002)

        consumer = threading.Thread(target=consume, daemon=True)
        consumer.start()
        with cond:
            assert cond.wait_for(lambda: len(got) >= 20, timeout=15)
        proxy.reset_all()
        started = time.monotonic()
        sub.close()
        closed = time.monotonic()
        consumer.join(2)
    direct.delete_database(name, missing_ok=True)
    direct.close()
    late = [t for t in got if t > closed]
    assert closed - started < 1.0
    assert not consumer.is_alive(), "the consuming loop did not end after close()"
    assert not late, f"{len(late)} changes handed out by next() calls made after close() returned ({len(got)} in all)"
