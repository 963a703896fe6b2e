"""A scriptable transport for applications' unit tests (and ours)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..models import Change
from .base import ChangesRequest, FeedConnection, Item, LastSeq, Transport

__all__ = ["MockTransport"]

Handler = Callable[[ChangesRequest], Iterable[Any]]


class MockTransport(Transport):
    """A transport whose connections are scripted by `handler(request)`.

    Every request is recorded in `requests`. A handler may block on `closed` (a
    `threading.Event` set by [`close()`][cloudsync.Transport.close]) to simulate a quiet
    feed:

    ```python
    def handler(request):
        if request.since is None:
            return [{"seq": 1, "id": "a", "changes": [{"rev": "1-a"}]}]
        return []

    sub = Subscription(db, transport=MockTransport(handler), since=None)
    ```

    Args:
        handler: Called once per connection with the
            [ChangesRequest][cloudsync.ChangesRequest]; returns an iterable of items: a
            [Change][cloudsync.Change], a change row `dict`
            (`{"seq": 1, "id": "a", "changes": [{"rev": "1-x"}]}`), a
            [LastSeq][cloudsync.LastSeq], or an exception instance, which is raised there
            (e.g. `NetworkError("boom")` to test reconnects). The iterable ending is a
            clean end.
    """

    name = "mock"

    def __init__(self, handler: Handler) -> None:
        super().__init__()
        self.handler = handler
        self.requests: list[ChangesRequest] = []
        """Every [ChangesRequest][cloudsync.ChangesRequest] received, in order."""
        self.closed = threading.Event()
        """Set by [`close()`][cloudsync.Transport.close]; cleared when the next connection starts."""

    def stream(self, request: ChangesRequest, connection: FeedConnection) -> Iterator[Item]:
        self.closed.clear()
        connection.set_abort(self.closed.set)
        self.requests.append(request)
        connection.opened()
        for item in self.handler(request):
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, dict):
                item = Change.from_row(item) if "id" in item else LastSeq(item.get("last_seq"))
            yield item
