"""The subscription's reader: connections one after another, backoff, and the bounded
queue between it and the consumer. Its stall watchdog lives in `_watchdog.py`.

It holds no reference to the [Subscription][cloudsync.Subscription] that owns it, so a
subscription the application drops is collected, and its finalizer closes the reader.

`generation` counts the connections the watchdog gave up on: what was queued in an older
generation is dropped, and a reader thread of an older one may queue nothing more.
"""

from __future__ import annotations

import collections
import enum
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ._ledger import WARN_EVERY
from ._watchdog import watch
from .errors import CloudSyncError, RequestTimeout, SubscriptionError, caused_by
from .transports import ChangesRequest, Transport

if TYPE_CHECKING:
    from .subscription import ReconnectPolicy, SubscriptionStats

log = logging.getLogger("cloudsync.subscription")

BATCH, ERROR = "batch", "error"


class SubscriptionState(str, enum.Enum):
    """Where a subscription is. `str` values, so `sub.state == "streaming"` works."""

    IDLE = "idle"  # created, not iterated or started yet
    CONNECTING = "connecting"
    STREAMING = "streaming"
    BACKING_OFF = "backing_off"
    CLOSED = "closed"


QUICK_END = 1.0
"""A clean end this soon after connecting, with nothing read, is not followed at once."""


def wrap(exc: BaseException, what: str) -> CloudSyncError:
    """`exc` if it is a cloudsync error, else a [SubscriptionError][cloudsync.SubscriptionError] caused by it."""
    if isinstance(exc, CloudSyncError):
        return exc
    wrapped = SubscriptionError(f"{what} failed: {type(exc).__name__}: {exc}")
    wrapped.__cause__ = exc
    return wrapped


class Reader:
    """Runs the connections of one subscription on a thread of its own."""

    def __init__(
        self,
        transport: Transport,
        template: ChangesRequest,
        *,
        reconnect: ReconnectPolicy,
        queue_size: int,
        stall_timeout: float,
        stats: SubscriptionStats,
        on_state_change: Callable[[SubscriptionState, SubscriptionState], Any] | None,
    ) -> None:
        self.transport = transport
        self.template = template
        self.reconnect = reconnect
        self.queue_size = queue_size
        self.stall_timeout = stall_timeout
        self.stats = stats
        self.on_state_change = on_state_change
        self.state: SubscriptionState = SubscriptionState.IDLE
        self.cond = threading.Condition()
        self.closed = threading.Event()
        # (generation, BATCH, [items]) or (generation, ERROR, exception).
        self.queue: collections.deque[tuple[int, str, Any]] = collections.deque()
        self.queued = 0
        """Items held between reader and application: queued, plus the batch the
        consumer is delivering (it gives them back when it has finished that batch)."""
        self.consumers_waiting = 0
        self.blocked = False  # waiting for queue room: not a stall
        self.generation = 0
        """Connections the watchdog gave up on (see the module's docstring)."""
        self.connected = False  # a connection is open: the watchdog may time it
        self.position: Any = None
        """Seq of the last change delivered (the consumer keeps it): where a reconnect
        after a failure resumes."""
        self.read_pos: Any = None
        """Seq of the last item queued: where the next connection after a clean end resumes."""
        self.last_error: BaseException | None = None
        self.threads: list[threading.Thread] = []
        self.items_read = 0
        """Items the transport yielded, on all connections (liveness, with its bytes)."""
        self._last_warning = -WARN_EVERY

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, position: Any) -> None:
        with self.cond:
            self.position = self.read_pos = position
            gen = self.generation
        self._spawn(functools.partial(self._run, gen), "cloudsync-reader")
        self._spawn(self._watch, "cloudsync-watchdog")

    def close(self) -> bool:
        """Stop reading (from any thread); returns whether this call closed it."""
        with self.cond:
            if self.closed.is_set():
                return False
            self.closed.set()
            self.cond.notify_all()
        self.transport.shutdown()  # for good: a connection being opened right now is refused too
        self.set_state(SubscriptionState.CLOSED)
        return True

    def join(self, deadline: float) -> None:
        me = threading.current_thread()
        for thread in list(self.threads):
            if thread is not me and thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))

    def replace_abandoned(self, gen: int) -> None:
        """A new reader thread for generation `gen`, which starts with a stall (the
        thread it replaces did not return from the abort)."""
        self._spawn(functools.partial(self._run, gen, True), "cloudsync-reader")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()

    def set_state(self, new: SubscriptionState) -> None:
        with self.cond:
            old = self.state
            if old is new or old is SubscriptionState.CLOSED:
                return
            self.state = new
        log.debug("state %s -> %s", old.value, new.value)
        if self.on_state_change is not None:
            try:
                self.on_state_change(old, new)
            except Exception:
                log.exception("on_state_change raised")

    def _watch(self) -> None:
        try:
            watch(self)
        except BaseException as exc:  # e.g. no thread to replace an abandoned reader
            with self.cond:
                gen = self.generation
            self.fail(gen, wrap(exc, "the subscription's watchdog"))

    # -- the reader thread ---------------------------------------------------------------
    def _run(self, gen: int, stalled: bool = False) -> None:
        try:
            self._connections(gen, stalled)
        except BaseException as exc:  # a bug of ours or a callback's: never die silently
            self.fail(gen, wrap(exc, "the subscription's reader"))

    def _connections(self, gen: int, stalled: bool) -> None:
        """Connections one after another. `stalled`: this thread replaces one the
        watchdog abandoned, so it starts with that failure (and its backoff)."""
        failures = 0
        failing_since = time.monotonic()
        quick_ends = 0  # clean ends in a row that came at once with nothing
        error: BaseException | None = self._stall_error(None) if stalled else None
        while True:
            if error is None:
                with self.cond:
                    if self.closed.is_set() or gen != self.generation:
                        return  # closed, or this thread was abandoned and replaced
                    since = self.read_pos
                    self.connected = True
                self.set_state(SubscriptionState.CONNECTING)
                progressed = clean = False
                self.stats.connections += 1
                if failures:
                    self.stats.reconnects += 1
                log.debug("connecting (%s, generation %d) since=%r", self.transport.name, gen, since)
                opened = time.monotonic()
                try:
                    for batch in self._stream(replace(self.template, since=since)):
                        if batch:
                            if not self._enqueue(gen, batch):
                                break
                            progressed = True
                    else:
                        clean = True
                except Exception as exc:  # classified below
                    error = exc
                with self.cond:
                    if self.closed.is_set():
                        return
                    retired = gen != self.generation
                    if retired:
                        if self.generation != gen + 1:
                            # Abandoned: a new reader thread took over, and `connected`
                            # is now its connection's, for the watchdog to time.
                            return
                        # The watchdog retired this connection: carry on as the next
                        # generation, which the watchdog then sees taken.
                        self.generation += 1
                        gen = self.generation
                    self.connected = False
                if retired:
                    error, clean = self._stall_error(error), False
                if clean:
                    if failures:
                        self._recovered(failures)
                    failures = 0
                    # A feed that ends at once with nothing (a server refusing politely, a
                    # proxy's empty answer) is not asked again in a tight loop.
                    quick = not progressed and time.monotonic() - opened < QUICK_END
                    quick_ends = quick_ends + 1 if quick else 0
                    if quick_ends:
                        log.debug("empty clean end %d in a row: waiting before reconnecting", quick_ends)
                        self._wait(self.reconnect.delay(quick_ends), None)
                    else:
                        log.debug("clean end (generation %d), reconnecting at once", gen)
                    continue
                if error is None:  # the queue refused: closed
                    continue
                if progressed:
                    if failures:
                        self._recovered(failures)
                    failures = 0
            error = wrap(error, f"{self.transport.name} transport")
            if failures == 0:
                failing_since = time.monotonic()
            failures += 1
            self.stats.errors += 1
            self.last_error = error
            if not error.retryable or self.reconnect.gives_up(failures, time.monotonic() - failing_since):
                log.warning("subscription (%s) gave up after %d failure(s): %s", self.transport.name, failures, error)
                self.fail(gen, error)
                return
            with self.cond:
                # Resume from what the application has, not from what was read: what the
                # broken connection queued is still delivered (complete and in order) and
                # its replay is dropped by the dedupe window.
                self.read_pos = self.position
            delay = self._delay(failures, error)
            self._warn(failures, delay, error)
            self.set_state(SubscriptionState.BACKING_OFF)
            self._wait(delay, error)
            error = None

    def _stall_error(self, cause: BaseException | None) -> RequestTimeout:
        timeout = RequestTimeout(f"no data for {self.stall_timeout:.1f}s: connection stalled")
        timeout.__cause__ = cause
        return timeout

    def _wait(self, delay: float, error: BaseException | None) -> None:
        if self.reconnect.sleep is not None:
            self.reconnect.sleep(delay)
        else:
            self._backoff_wait(delay, error)

    def _delay(self, failures: int, error: CloudSyncError) -> float:
        delay = self.reconnect.delay(failures)
        hint = getattr(error, "retry_after", None)
        if hint is None:
            hint = self.transport.retry_hint()
        if isinstance(hint, (int, float)):
            delay = max(delay, min(float(hint), self.reconnect.max_retry_after))
        return delay

    def _warn(self, failures: int, delay: float, error: BaseException) -> None:
        """A failure: at WARNING at most every WARN_EVERY seconds, else at DEBUG."""
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY:
            self._last_warning = now
            log.warning("subscription (%s) failed %d time(s) in a row, retrying in %.1fs: %s",
                        self.transport.name, failures, delay, error)
        else:
            log.debug("connection failed (%s); retry %d in %.2fs", error, failures, delay)

    def _recovered(self, failures: int) -> None:
        if self._last_warning > -WARN_EVERY:
            log.warning("subscription (%s) is streaming again after %d failure(s)", self.transport.name, failures)
            self._last_warning = -WARN_EVERY
        self.last_error = None

    def fail(self, gen: int, error: BaseException) -> None:
        """Hand a terminal error to the consumer."""
        self.last_error = error
        with self.cond:
            self.queue.append((gen, ERROR, error))
            self.cond.notify_all()

    def _backoff_wait(self, delay: float, error: BaseException | None) -> None:
        """Wait `delay` seconds (`close()` interrupts); after a refused connection,
        probe the server meanwhile and stop waiting once it accepts connections."""
        interval = self.reconnect.probe_interval
        if interval is None or error is None or not caused_by(error, ConnectionRefusedError):
            self.closed.wait(delay)
            return
        deadline = time.monotonic() + delay
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            step = interval * (0.5 + self.reconnect.random())
            if self.closed.wait(min(step, remaining)):
                return
            reachable = self.transport.reachable(timeout=min(0.25, interval))
            if reachable is None:  # this transport cannot tell: wait the rest
                self.closed.wait(max(0.0, deadline - time.monotonic()))
                return
            if reachable:
                log.debug("server accepts connections again: reconnecting before the backoff ends")
                return

    def _stream(self, request: ChangesRequest) -> Iterator[list[Any]]:
        """The transport's items in batches, counted: an item is a sign of life for the
        stall watchdog, as a byte the transport reports is."""
        for batch in self.transport.batches(request, on_open=self.opened):
            self.items_read += len(batch)
            yield batch

    def _enqueue(self, gen: int, items: list[Any]) -> bool:
        """Queue `items`, in slices that fit: at most `queue_size` items are held
        between reader and application (a slice waits for room)."""
        start, count = 0, len(items)
        while start < count:
            with self.cond:
                while True:
                    if self.closed.is_set() or gen != self.generation:
                        self.blocked = False
                        return False
                    room = self.queue_size - self.queued
                    if room > 0:
                        break
                    self.blocked = True
                    self.cond.wait(1.0)
                self.blocked = False
                part = items if (start == 0 and count <= room) else items[start : start + room]
                start += len(part)
                for item in reversed(part):
                    if item.seq is not None:
                        self.read_pos = item.seq
                        break
                self.queue.append((gen, BATCH, part))
                self.queued += len(part)
                if self.consumers_waiting:
                    self.cond.notify_all()
        if self.state is not SubscriptionState.STREAMING:
            self.set_state(SubscriptionState.STREAMING)
        return True

    def opened(self) -> None:
        self.set_state(SubscriptionState.STREAMING)
