"""A `_db_updates` subscription through the FaultProxy: a connection dropped silently
(no FIN, no RST) or reset is noticed, and the subscription resumes from the last event
delivered, without losing or repeating one (the same reader, watchdog and dedupe as a
database subscription)."""

from __future__ import annotations

import itertools
import os
import threading

import pytest

import cloudsync
from tests.faults import scenario
from tests.faults.proxy import FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DEADLINE = 15.0
_names = itertools.count()


@pytest.mark.parametrize("fault", ["blackhole", "reset_all"])
@pytest.mark.parametrize("transport", ["longpoll", "continuous", "sse"])
def test_a_dropped_connection_is_noticed_and_resumed(embedded_url: str, transport: str, fault: str) -> None:
    """After the live connection is blackholed or reset, the next database events arrive,
    and each watched event is delivered exactly once. A blackholed connection is always
    found (by the stall watchdog, or a request sent into it times out); a reset may hit a
    long poll's idle kept-alive connection, which the next request replaces unnoticed."""
    prefix = f"faults-dbu-{os.getpid()}-{next(_names)}-"
    names = [prefix + s for s in ("a", "b", "c")]
    got: list[str] = []
    cond = threading.Condition()

    def take(update: cloudsync.DbUpdate) -> None:
        with cond:
            if update.db_name.startswith(prefix):
                got.append(update.db_name)
                cond.notify_all()

    host, port = embedded_url.rsplit(":", 1)
    with cloudsync.Client(embedded_url) as direct, \
            FaultProxy(host.split("//", 1)[1], int(port)) as proxy, cloudsync.Client(proxy.url) as client:
        sub = client.subscribe_db_updates(transport, heartbeat=scenario.HEARTBEAT,
                                          stall_timeout=scenario.STALL_TIMEOUT, reconnect=scenario.RECONNECT)
        with sub:
            sub.start(take)
            direct.create_database(names[0])
            with cond:
                assert cond.wait_for(lambda: len(got) >= 1, DEADLINE), got
            assert proxy.wait_connections(1, DEADLINE)
            assert getattr(proxy, fault)() >= 1
            for name in names[1:]:
                direct.create_database(name)
            with cond:
                assert cond.wait_for(lambda: len(got) >= 3, DEADLINE), got
            stats = sub.stats
        for name in names:
            direct.delete_database(name, missing_ok=True)
    assert got == names
    if fault == "blackhole":
        assert stats.errors + stats.stalls >= 1
