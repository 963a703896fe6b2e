"""Reading the source's changes for a replication.

A one-shot replication reads `_changes` a page at a time with `feed=normal` (the server
answers at once with what there is, so a short page means caught up); a continuous one
follows a [Subscription][cloudsync.Subscription]. Both ask for `style=all_docs`: every
leaf revision of a changed document, conflicts included.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from .._retry import RetryPolicy
from ..models import Change, LastSeq
from ..transports import ChangesRequest, LongPollTransport

__all__ = ["ChangesPages", "STYLE"]

log = logging.getLogger("cloudsync.replication")

STYLE = {"style": "all_docs"}


class _NormalFeed(LongPollTransport):
    """`feed=normal`: the long-poll answer's shape, sent at once, never held open (and so
    safe on pouchdb-server, which ignores a long poll's `timeout`). Pages held whole are
    asked for ahead, as the long-poll transport does."""

    name = "normal"
    feed = "normal"


class ChangesPages:
    """The source's changes, page by page, from a seq.

    Args:
        source: The source [Database][cloudsync.Database].
        page_size: Rows per page.
        selector: A Mango selector the changes must match.
        doc_ids: Only these documents' changes.
        read_timeout: Seconds a page may take to arrive.
        retry: How a page that failed transiently is asked for again.
    """

    def __init__(self, source: Any, page_size: int, *, selector: Mapping[str, Any] | None = None,
                 doc_ids: Sequence[str] | None = None, read_timeout: float = 60.0,
                 retry: RetryPolicy | None = None) -> None:
        self.page_size = page_size
        self.retry = retry if retry is not None else RetryPolicy()
        self._transport = _NormalFeed(page_size=None)
        self._transport.attach(source.changes_endpoint())
        self._template = ChangesRequest(
            selector=selector, doc_ids=tuple(doc_ids) if doc_ids is not None else None,
            query_params=STYLE, heartbeat=0, timeout=None, limit=page_size,
            stall_timeout=read_timeout,
        )

    def read(self, since: Any) -> tuple[list[Change], Any, bool]:
        """One page from `since` (`None`: the beginning).

        Returns:
            `(changes, last_seq, more)`: `more` when the page was full (there may be more).

        Raises:
            CloudSyncError: The page failed after the retries `retry` allows.
        """
        request = replace(self._template, since=since)
        attempt = 0
        while True:
            try:
                changes: list[Change] = []
                last_seq = None
                for item in self._transport.items(request):
                    if item.__class__ is LastSeq:
                        last_seq = item.seq
                    else:
                        changes.append(item)  # type: ignore[arg-type]
                break
            except Exception as exc:
                if attempt + 1 >= self.retry.attempts or not self.retry.should_retry(exc, True):
                    raise
                delay = self.retry.delay(exc, attempt)
                log.debug("changes page from %r failed (%s): again in %.2fs", since, exc, delay)
                self.retry.sleep(delay)
                attempt += 1
        if last_seq is None:
            last_seq = changes[-1].seq if changes else since
        return changes, last_seq, len(changes) >= self.page_size

    def close(self) -> None:
        """Abort a page being read, from any thread; no page is read after it."""
        self._transport.shutdown()
