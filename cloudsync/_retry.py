"""How cloudsync waits before trying again: [RetryPolicy][cloudsync.RetryPolicy] for one
request, [ReconnectPolicy][cloudsync.ReconnectPolicy] for a subscription's connections.

Both speak one vocabulary: `backoff` (first ceiling, seconds) doubling up to `max_backoff`,
`attempts` (tries in a row, the first included), `max_time` (seconds after which no new
try starts), `max_retry_after` (the longest server hint honoured), and injectable `sleep`
and `random`.
"""

from __future__ import annotations

import random as _random
import time
import warnings
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from .errors import CloudSyncError, HTTPError, TransportError

__all__ = ["ReconnectPolicy", "RetryPolicy", "full_jitter"]


def full_jitter(attempt: int, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Capped full-jitter exponential backoff: uniform in `[0, min(cap, base * 2**attempt))`.

    `attempt` counts from 0 for the first retry.
    """
    return rand() * min(cap, base * (2 ** min(attempt, 62)))


@dataclass(frozen=True)
class RetryPolicy:
    """How the client retries one request that failed transiently.

    - 429 is retried for every request (the server refused it before doing anything).
      `Retry-After` is honoured on a 429 and on a 503 (`retry_after` of the error),
      up to `max_retry_after` seconds; a longer hint raises the error at once.
    - 5xx, timeouts, broken connections and unusable bodies are retried only for
      idempotent requests, or for any request that certainly was not sent.
    - 409 and other 4xx are never retried.

    Args:
        attempts: Total tries, the first included. `1` disables retries.
        backoff: First backoff ceiling in seconds; doubles each retry up to `max_backoff`.
        max_backoff: The largest backoff ceiling, in seconds.
        max_time: No retry starts once this many seconds have passed since the first try.
        max_retry_after: The longest `Retry-After` honoured, in seconds.
        sleep: Waits a number of seconds; injectable so tests never really wait.
        random: Returns a float in `[0, 1)`; injectable for deterministic tests.

    Raises:
        ValueError: `attempts` is below 1, or a duration is negative.
    """

    attempts: int = 4
    backoff: float = 0.1
    max_backoff: float = 5.0
    max_time: float = 30.0
    max_retry_after: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    random: Callable[[], float] = field(default=_random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if min(self.backoff, self.max_backoff, self.max_time, self.max_retry_after) < 0:
            raise ValueError("RetryPolicy durations must not be negative")

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy that tries once."""
        return cls(attempts=1)

    def should_retry(self, error: BaseException, idempotent: bool) -> bool:
        """Whether a failed request may be tried again.

        Args:
            error: What the last try raised.
            idempotent: Whether the request may safely be sent twice.

        Returns:
            Whether to retry (the time left, `max_time`, is checked apart).
        """
        if not isinstance(error, CloudSyncError) or not error.retryable:
            return False
        hint = error.retry_after if isinstance(error, HTTPError) else None
        if hint is not None and hint > self.max_retry_after:
            return False
        if isinstance(error, HTTPError) and error.status == 429:
            return True
        if isinstance(error, TransportError) and not error.sent:
            return True
        return idempotent

    def delay(self, error: BaseException, retry_number: int) -> float:
        """Seconds to wait before a retry: the server's `Retry-After` hint, else a
        capped full-jitter backoff.

        Args:
            error: What the last try raised.
            retry_number: Which retry this is, from 0 for the first.

        Returns:
            The wait in seconds.
        """
        if isinstance(error, HTTPError) and error.retry_after is not None and error.retryable:
            return error.retry_after
        return full_jitter(retry_number, self.backoff, self.max_backoff, self.random)

    def deadline(self) -> float:
        return time.monotonic() + self.max_time


_RENAMED = {
    "initial": ("backoff", lambda value: value),
    "max": ("max_backoff", lambda value: value),
    "max_errors": ("attempts", lambda value: None if value is None else value + 1),
    "max_error_time": ("max_time", lambda value: value),
}
"""ReconnectPolicy's names before 0.2, and how each maps onto today's."""


def _renamed(old: str) -> str:
    new = _RENAMED[old][0]
    note = " (attempts counts the first failure too: max_errors + 1)" if old == "max_errors" else ""
    return f"ReconnectPolicy.{old} is deprecated; use {new}{note}"


@dataclass(frozen=True, init=False)
class ReconnectPolicy:
    """How a subscription waits between failed connections.

    **By default a subscription retries transient failures forever** (network errors,
    timeouts, 429 and 5xx answers), logging a WARNING at most every 30 seconds while it
    keeps failing; `sub.state` and `sub.last_error` tell where it is. Bound it with
    `attempts` or `max_time`: then the subscription gives up and raises the last error.
    Errors that retrying cannot fix (400, 401 after a renewal, 403, 404, a TLS failure)
    are raised at once.

    Capped full-jitter exponential backoff, as [RetryPolicy][cloudsync.RetryPolicy]:
    after the n-th failed connection in a row it waits a uniform random time in
    `[0, min(max_backoff, backoff * 2**(n-1)))`; a connection that delivered something
    resets the count. A clean end never waits. A server's `Retry-After` (429, 503) or SSE
    `retry:` hint is a lower bound, honoured up to `max_retry_after` seconds.

    Args:
        backoff: First backoff ceiling in seconds; doubles each failure up to `max_backoff`.
        max_backoff: The largest backoff ceiling, in seconds.
        attempts: Connections in a row that may fail, the first included, before the
            subscription gives up; `None` (default) never gives up.
        max_time: No reconnect starts once the connections have been failing for this
            many seconds; `None` (default): no limit.
        max_retry_after: The longest server hint honoured, in seconds.
        probe_interval: When a connection was *refused* (nothing listening: the server
            is restarting), the wait is spent probing the server's port with a bare TCP
            connect about every `probe_interval` seconds (jittered ±50%), and ends as
            soon as the port accepts. Any other failure waits the full delay. `None`
            turns probing off; so does an injected `sleep`.
        sleep: Waits a number of seconds; the default is an interruptible wait that
            [Subscription.close][cloudsync.Subscription.close] cuts short.
        random: Returns a float in `[0, 1)`; injectable for deterministic tests.
        **deprecated: The names before 0.2 (`initial`, `max`, `max_errors`,
            `max_error_time`) still work, with a `DeprecationWarning`; `max_errors=n`
            is `attempts=n + 1`.

    Raises:
        ValueError: `attempts` is below 1.
        TypeError: A keyword argument that is neither today's nor a name before 0.2.
    """

    backoff: float = 0.5
    max_backoff: float = 30.0
    _: KW_ONLY
    attempts: int | None = None
    max_time: float | None = None
    max_retry_after: float = 300.0
    probe_interval: float | None = 0.2
    sleep: Callable[[float], Any] | None = field(default=None, repr=False, compare=False)
    random: Callable[[], float] = field(default=_random.random, repr=False, compare=False)

    def __init__(
        self,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        *,
        attempts: int | None = None,
        max_time: float | None = None,
        max_retry_after: float = 300.0,
        probe_interval: float | None = 0.2,
        sleep: Callable[[float], Any] | None = None,
        random: Callable[[], float] = _random.random,
        **deprecated: Any,
    ) -> None:
        given = {"backoff": backoff, "max_backoff": max_backoff, "attempts": attempts, "max_time": max_time}
        for old, value in deprecated.items():
            if old not in _RENAMED:
                raise TypeError(f"ReconnectPolicy() got an unexpected keyword argument {old!r}")
            warnings.warn(_renamed(old), DeprecationWarning, stacklevel=2)
            new, convert = _RENAMED[old]
            given[new] = convert(value)
        if given["attempts"] is not None and given["attempts"] < 1:
            raise ValueError("ReconnectPolicy.attempts must be at least 1 (or None)")
        for name, value in (*given.items(), ("max_retry_after", max_retry_after),
                            ("probe_interval", probe_interval), ("sleep", sleep), ("random", random)):
            object.__setattr__(self, name, value)

    def delay(self, failures: int) -> float:
        """Seconds to wait before the next connection.

        Args:
            failures: Failed connections in a row, 1 for the first.

        Returns:
            The wait in seconds (a server's hint may lengthen it).
        """
        return full_jitter(max(0, failures - 1), self.backoff, self.max_backoff, self.random)

    def gives_up(self, failures: int, failing_for: float) -> bool:
        """Whether to stop reconnecting.

        Args:
            failures: Failed connections in a row, 1 for the first.
            failing_for: Seconds since the first of them.

        Returns:
            Whether `attempts` or `max_time` is used up.
        """
        if self.attempts is not None and failures >= self.attempts:
            return True
        return self.max_time is not None and failing_for > self.max_time

    # The names before 0.2, readable for one more release.
    @property
    def initial(self) -> float:
        warnings.warn(_renamed("initial"), DeprecationWarning, stacklevel=2)
        return self.backoff

    @property
    def max(self) -> float:
        warnings.warn(_renamed("max"), DeprecationWarning, stacklevel=2)
        return self.max_backoff

    @property
    def max_errors(self) -> int | None:
        warnings.warn(_renamed("max_errors"), DeprecationWarning, stacklevel=2)
        return None if self.attempts is None else self.attempts - 1

    @property
    def max_error_time(self) -> float | None:
        warnings.warn(_renamed("max_error_time"), DeprecationWarning, stacklevel=2)
        return self.max_time
