"""Retry policy for single requests: a small value, with injectable time and randomness."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import CloudSyncError, HTTPError, TransportError

__all__ = ["RetryPolicy", "full_jitter"]


def full_jitter(attempt: int, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Capped full-jitter exponential backoff: uniform in ``[0, min(cap, base * 2**attempt))``.

    ``attempt`` counts from 0 for the first retry.
    """
    return rand() * min(cap, base * (2 ** min(attempt, 62)))


@dataclass(frozen=True)
class RetryPolicy:
    """How the client retries one request that failed transiently.

    - 429 is retried for every request (the server refused it before doing anything).
      ``Retry-After`` is honoured on a 429 and on a 503 (``retry_after`` of the error),
      up to ``max_retry_after`` seconds; a longer hint raises the error at once.
    - 5xx, timeouts, broken connections and unusable bodies are retried only for
      idempotent requests, or for any request that certainly was not sent.
    - 409 and other 4xx are never retried.

    ``sleep`` and ``random`` are injectable so tests never really wait.
    """

    #: Total tries, the first included. ``1`` disables retries.
    attempts: int = 4
    #: First backoff ceiling in seconds; doubles each retry up to ``max_backoff``.
    backoff: float = 0.1
    max_backoff: float = 5.0
    #: No retry starts once this many seconds have passed since the first try.
    max_time: float = 30.0
    max_retry_after: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

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
        """Whether ``error`` may be retried for a request of this idempotency."""
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
        """Seconds to wait before retry number ``retry_number`` (0-based) after ``error``."""
        if isinstance(error, HTTPError) and error.retry_after is not None and error.retryable:
            return error.retry_after
        return full_jitter(retry_number, self.backoff, self.max_backoff, self.random)

    def deadline(self) -> float:
        return time.monotonic() + self.max_time
