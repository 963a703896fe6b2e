"""Ctrl-C between units of work, not in the middle of one."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["InterruptPoint", "deferred_interrupt", "held_interrupt"]


class InterruptPoint:
    """What a block under [deferred_interrupt][cloudsync.cli.interrupts.deferred_interrupt]
    gets: `check()` between units of work; `held` says whether a SIGINT waits for it."""

    def __init__(self, held: bool) -> None:
        self.held = held
        self.received = False

    def check(self) -> None:
        """Raise `KeyboardInterrupt` if a SIGINT came."""
        if self.received:
            raise KeyboardInterrupt


@contextmanager
def deferred_interrupt(held: bool = True) -> Iterator[InterruptPoint]:
    """Hold SIGINT while the block runs; the block calls `point.check()` between units of
    work (a library's progress callback), which raises `KeyboardInterrupt` once a SIGINT
    came. It is raised at the end of the block too. While `point.held` is false (say,
    before the first unit of work, when there is nothing to keep), and on a second SIGINT,
    it is raised at once. A SIGINT ignored by whoever started the process stays ignored."""
    point = InterruptPoint(held)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield point
        return

    def hold(signum: int, frame: Any) -> None:
        if point.received or not point.held:
            raise KeyboardInterrupt
        point.received = True

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield point
    finally:
        signal.signal(signal.SIGINT, previous)
    point.check()


@contextmanager
def held_interrupt() -> Iterator[None]:
    """Hold SIGINT while the block runs, so a request in flight is answered and counted;
    `KeyboardInterrupt` is raised when the block ends. A second SIGINT raises at once."""
    with deferred_interrupt():
        yield
