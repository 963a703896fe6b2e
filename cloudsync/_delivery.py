"""The subscription's consumer side: changes handed to the application one at a time or
in batches, replays dropped, the ledger kept, and the close that stops it all.

`handing` is set while a change is being handed out: `close()` sets `stopped`, then
waits for a hand-out under way, and none starts after (a consumer sets `handing` before
it looks at `stopped`).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ._dedupe import DedupeWindow
from ._ledger import Ledger
from ._reader import BATCH, ERROR, Reader
from .errors import CloudSyncError
from .models import Change
from .transports import LastSeq

__all__ = ["CLOSE_BUDGET", "TIMEOUT", "Delivery"]

log = logging.getLogger("cloudsync.subscription")

CLOSE_BUDGET = 0.8
"""Seconds `close()` gives the final checkpoint save and the reader's threads."""
TIMEOUT = object()
"""What [Delivery.take][cloudsync._delivery.Delivery.take] returns when its time is up."""
_EMPTY: list[Any] = []


class Delivery:
    """Takes the reader's batches and hands their changes out. Only the one consumer
    calls `next`, `next_batch` and `take`; `close` is called from any thread."""

    def __init__(self, reader: Reader, ledger: Ledger, window: DedupeWindow) -> None:
        self.reader = reader
        self.ledger = ledger
        self.window = window
        self.handing = False
        self.stopped = False
        self.delivered = 0
        self._batch: list[Any] = _EMPTY  # the batch being delivered, one item per take
        self._batch_pos = 0
        self._batch_gen = 0
        self._close_done = threading.Event()
        # The subscription being iterated through this object (kept alive by the loop).
        self.owner: Any = None

    def next(self) -> Change | None:
        """Acknowledge what was handed out, then the next change; `None` once closed.
        Raises a terminal error (after closing)."""
        ledger = self.ledger
        if ledger.outstanding:  # before `handing`: a save may wait on a server, close() must not
            ledger.acknowledge(self.reader.position)
        self.handing = True
        try:
            return None if self.stopped else self.take(None)
        finally:
            self.handing = False

    # The subscription's iterator: `for change in subscription` calls this directly.
    def __iter__(self) -> Delivery:
        return self

    def __next__(self) -> Change:
        change = self.next()
        if change is None:
            raise StopIteration
        return change

    def next_batch(self, max_size: int, max_wait: float) -> tuple[list[Change] | None, CloudSyncError | None]:
        """Acknowledge what was handed out, then at most `max_size` changes, taken for at
        most `max_wait` seconds after the first: `(batch, None)`, `(None, None)` once
        closed, or `(batch, error)` when a terminal error came after the batch's first
        change (it is raised after the batch is handed out)."""
        ledger = self.ledger
        if ledger.outstanding:
            ledger.acknowledge(self.reader.position)
        self.handing = True
        try:
            first = None if self.stopped else self.take(None)
            if first is None:
                return None, None
            batch = [first]
            deadline = time.monotonic() + max_wait
            while len(batch) < max_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    change = self.take(remaining)
                except CloudSyncError as exc:
                    return batch, exc
                if change is None or change is TIMEOUT:
                    break
                batch.append(change)
            return batch, None
        finally:
            self.handing = False

    def take(self, timeout: float | None) -> Any:
        """The next change, `None` when closed, `TIMEOUT` after `timeout` seconds.
        Raises a terminal error (after closing). Only the consumer calls this, with
        `handing` set. Items of the current batch are delivered without taking the
        queue's lock; it is taken once per batch, to return the batch's room to the
        reader and fetch the next one."""
        reader = self.reader
        deadline = None
        while True:
            batch = self._batch
            pos = self._batch_pos
            if pos < len(batch):
                item = batch[pos]
                self._batch_pos = pos + 1
                if self._batch_gen < reader.generation:  # from a connection the watchdog gave up on
                    reader.stats.dropped += 1
                    continue
                if item.__class__ is LastSeq:
                    self._passed(item.seq)
                    continue
                if self.stopped:  # close() was called while this consumer was held up
                    return None
                window = self.window
                young = window.young
                doc_id = item.id
                if doc_id not in young and doc_id not in window.old and len(item.revs) < 2 and item.rev:
                    # DedupeWindow.first_time's common case (a document not seen lately), inlined:
                    # it runs once per change of a drain.
                    young[doc_id] = item.rev
                    if len(young) >= window.room:
                        window.rotate()
                elif not window.first_time(item):
                    reader.stats.duplicates += 1
                    log.debug("dropped duplicate %s %s", item.id, item.revs or item.rev)
                    self._passed(item.seq)
                    continue
                seq = item.seq
                if seq is not None:
                    reader.position = seq
                ledger = self.ledger
                if ledger.manual:
                    ledger.handed(item)
                else:  # Ledger.handed, inlined: once per change of a drain
                    ledger.outstanding += 1
                    ledger.last_handed = item
                self.delivered += 1
                return item
            self._batch = _EMPTY
            self._batch_pos = 0
            error: BaseException | None = None
            with reader.cond:
                if batch:
                    reader.queued -= len(batch)
                    if reader.blocked:
                        reader.cond.notify_all()
                while not reader.queue:
                    if reader.closed.is_set():
                        return None
                    if timeout is not None:
                        if deadline is None:
                            deadline = time.monotonic() + timeout
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            return TIMEOUT
                    else:
                        remaining = 1.0
                    reader.consumers_waiting += 1
                    try:
                        reader.cond.wait(remaining)
                    finally:
                        reader.consumers_waiting -= 1
                if reader.closed.is_set():
                    return None
                gen, kind, payload = reader.queue.popleft()
                if kind == ERROR:
                    error = payload
                else:
                    assert kind == BATCH
                    self._batch, self._batch_gen = payload, gen
            if error is not None:
                self.close(wait_for_handing=False)  # the consumer itself is handing
                raise error

    def _passed(self, seq: Any) -> None:
        """A position with nothing to hand over (a marker or a duplicate)."""
        if seq is not None:
            self.reader.position = seq
            self.ledger.passed(seq)

    def close(self, *, wait_for_handing: bool) -> None:
        """Stop delivering, from any thread, within `CLOSE_BUDGET` seconds: once this
        returns nothing is handed out any more and the checkpoint store is sealed."""
        started = time.monotonic()
        self.stopped = True
        first = self.reader.close()
        if not first:  # another close() is under way: return once it has finished
            self._close_done.wait(CLOSE_BUDGET)
        # Wait for a hand-out under way on another thread (microseconds: polled, since an
        # event set per change would cost the drain path); none starts after this. A
        # consumer held up longer, by a checkpoint save on a hung server, sees `stopped`
        # before it hands anything out.
        handing_deadline = started + CLOSE_BUDGET / 2
        while wait_for_handing and self.handing and time.monotonic() < handing_deadline:
            time.sleep(0.0002)
        if first:
            self.ledger.final_save(started + CLOSE_BUDGET * 0.75)
            log.debug("subscription closed at %r", self.reader.position)
            self.reader.join(started + CLOSE_BUDGET)
            self._close_done.set()
