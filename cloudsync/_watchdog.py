"""The subscription's stall watchdog: a connection that receives no byte and no item for the
stall window is aborted, and a reader thread that does not come back from the abort is
abandoned and replaced."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._reader import Reader

log = logging.getLogger("cloudsync.subscription")

ABORT_GRACE = 1.0
"""Seconds a reader thread has to come back from an abort before it is abandoned."""


def watch(reader: Reader) -> None:
    """The watchdog thread's body, until `reader` is closed. No byte and no item for `stall_timeout`
    retires the connection's generation and aborts it; a reader that does not come back
    within `ABORT_GRACE` is replaced (by one that backs off first, as after any stall)."""
    interval = min(1.0, reader.stall_timeout / 4)
    # (connections opened, bytes and items received, since when): the clock of the open connection.
    mark: tuple[int, int, float] | None = None
    while not reader.closed.wait(interval):
        with reader.cond:
            watched = reader.connected and not reader.blocked  # blocked on queue room: not a stall
            gen = reader.generation
        now = time.monotonic()
        opened, received = reader.stats.connections, reader.transport.bytes_received + reader.items_read
        if not watched:
            mark = None
            continue
        if mark is None or mark[0] != opened or mark[1] != received:
            mark = (opened, received, now)
            continue
        if now - mark[2] < reader.stall_timeout:
            continue
        with reader.cond:
            if reader.generation != gen or not reader.connected or reader.closed.is_set():
                continue
            reader.generation = gen + 1
        reader.stats.stalls += 1
        log.debug("generation %d stalled (%.1fs without data): aborting", gen, now - mark[2])
        reader.transport.close()
        mark = None
        if reader.closed.wait(ABORT_GRACE):
            return
        with reader.cond:
            if reader.generation != gen + 1:
                continue  # the reader came back from the abort and took the next generation
            # The transport did not unblock: abandon that reader and its generation.
            reader.generation = new = gen + 2
            reader.read_pos = reader.position
        log.debug("reader of generation %d did not return; abandoning it", gen)
        reader.replace_abandoned(new)
