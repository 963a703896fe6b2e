"""Ctrl-C between units of work, not in the middle of one."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["held_interrupt"]


@contextmanager
def held_interrupt() -> Iterator[None]:
    """Hold SIGINT while the block runs, so a request in flight is answered and counted;
    `KeyboardInterrupt` is raised when the block ends. A second SIGINT raises at once. A
    SIGINT ignored by whoever started the process stays ignored."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt
