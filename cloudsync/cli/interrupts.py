"""Ctrl-C between units of work, not in the middle of one."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["deferred_interrupt", "held_interrupt"]


@contextmanager
def deferred_interrupt() -> Iterator[Callable[[], None]]:
    """Hold SIGINT while the block runs; the block gets a `check()` to call between units
    of work (a library's progress callback), which raises `KeyboardInterrupt` once a
    SIGINT came. It is raised at the end of the block too. A second SIGINT raises at once.
    A SIGINT ignored by whoever started the process stays ignored."""
    received: list[int] = []

    def check() -> None:
        if received:
            raise KeyboardInterrupt

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield check
        return

    def hold(signum: int, frame: Any) -> None:
        check()  # the second one: stop at once
        received.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield check
    finally:
        signal.signal(signal.SIGINT, previous)
    check()


@contextmanager
def held_interrupt() -> Iterator[None]:
    """Hold SIGINT while the block runs, so a request in flight is answered and counted;
    `KeyboardInterrupt` is raised when the block ends. A second SIGINT raises at once."""
    with deferred_interrupt():
        yield
