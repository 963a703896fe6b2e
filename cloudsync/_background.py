"""A consumer thread shared by `Subscription.start()` and `LiveQuery.start()`: it hands
each item to a callback and, on any error, reports it once and closes its owner."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

__all__ = ["consume_in_background"]

T = TypeVar("T")


def consume_in_background(
    items: Callable[[], Iterable[T]],
    on_item: Callable[[T], Any] | None,
    on_error: Callable[[BaseException], Any] | None,
    close: Callable[[], None],
    *,
    name: str,
    log: logging.Logger,
    what: str,
) -> threading.Thread:
    """Start a daemon thread feeding `items()` to `on_item`. An error (from the items or
    from `on_item`) goes to `on_error`, or is logged as "`what` stopped" without one;
    `close()` follows either way."""

    def run() -> None:
        try:
            for item in items():
                if on_item is not None:
                    on_item(item)
        except BaseException as exc:
            if on_error is not None:
                try:
                    on_error(exc)
                except Exception:
                    log.exception("on_error raised")
            else:
                log.error("%s stopped: %s", what, exc, exc_info=exc)
            close()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
