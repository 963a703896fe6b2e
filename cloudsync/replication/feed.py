"""Reading the source's changes for a replication.

A one-shot replication reads `_changes` a page at a time with `feed=normal` (the server
answers at once with what there is, so a short page means caught up), paged by
`changes.read_pages` as `db.changes()` is; a continuous one follows a
[Subscription][cloudsync.Subscription]. Both ask for `style=all_docs`: every leaf
revision of a changed document, conflicts included.

Unlike `db.changes()`, which reads each page with one request of the database's own,
the pages are read through a transport on the feed's endpoint: `close()` aborts a page
in flight from another thread (`Replication.stop()`), a page may take `read_timeout`
seconds, a page held whole has the next one asked for ahead of need, and the reads keep
off the connection pool the fetch and write stages use.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from .._retry import RetryPolicy
from ..changes import Page, read_pages
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
            query_params=STYLE, heartbeat=0, timeout=None, stall_timeout=read_timeout,
        )

    def pages(self, since: Any) -> Iterator[tuple[list[Change], Any]]:
        """The pages from `since` (`None`: the beginning) to the source's end as of now.

        Yields:
            `(changes, last_seq)` for each page, empty ones included.

        Raises:
            CloudSyncError: A page failed after the retries `retry` allows.
        """
        return read_pages(self.read, replace(self._template, since=since), self.page_size)

    def read(self, request: ChangesRequest) -> Page:
        """The one page `request` asks for, asked again after a transient failure."""
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
                return Page(changes, len(changes), last_seq)
            except Exception as exc:
                if attempt + 1 >= self.retry.attempts or not self.retry.should_retry(exc, True):
                    raise
                delay = self.retry.delay(exc, attempt)
                log.debug("changes page from %r failed (%s): again in %.2fs", request.since, exc, delay)
                self.retry.sleep(delay)
                attempt += 1

    def close(self) -> None:
        """Abort a page being read, from any thread; no page is read after it."""
        self._transport.shutdown()
