"""Feeds waiting for commits: what a database and the `_db_updates` log both offer."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

__all__ = ["Listener", "Listeners"]


class Listener(Protocol):
    """What `Listeners.listen` calls: a feed waiting for commits."""

    def notify(self, shared: dict[Any, Any]) -> bool:
        """New changes were committed: handle them; return false to stop listening."""

    def wake(self) -> None:
        """Stop waiting (the source is closing); called after the listener was removed."""


class Listeners:
    """The feeds waiting on one source of changes, in the order they started waiting."""

    def __init__(self) -> None:
        self._listeners: dict[Listener, None] = {}
        self._notify_scheduled = False

    def schedule_notify(self) -> None:
        """Notify listening feeds of a commit, soon (once however many commits come before)."""
        if self._listeners and not self._notify_scheduled:
            self._notify_scheduled = True
            asyncio.get_running_loop().call_soon(self._notify)

    def _notify(self) -> None:
        self._notify_scheduled = False
        listeners = self._listeners
        shared: dict[Any, Any] = {}
        for listener in list(listeners):
            if not listener.notify(shared):
                listeners.pop(listener, None)

    def listen(self, listener: Listener) -> None:
        """Call `listener.notify(shared)` after every commit until it returns false (or
        `unlisten()`, or `wake()`). `shared` is a dict that lives for one round of
        notifications, for listeners to share work (rows read, rows encoded) with each other."""
        self._listeners[listener] = None

    def unlisten(self, listener: Listener) -> None:
        self._listeners.pop(listener, None)

    def wake(self) -> None:
        """Wake every feed waiting on this source (shutdown, database deleted)."""
        listeners, self._listeners = self._listeners, {}
        for listener in listeners:
            listener.wake()
