"""A one-shot read of a database's changes: [ChangesIterator][cloudsync.ChangesIterator].

It pages through the normal `_changes` feed: each request asks for `limit=page_size`
rows from the `last_seq` of the page before, so one page is held at a time. The read
ends at the database's end as of the moment it gets there: an answer with fewer rows
than asked for, or `pending: 0` where the server sends it. Seqs are never compared
(they are opaque on CouchDB 3); a server that answers a full page without moving its
`last_seq` is an error, not an endless loop.

That paging (`read_pages`) is also the one-shot replication's, which reads each page
through a transport instead (`replication/feed.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

from .errors import InvalidResponse
from .models import Change
from .transports.base import ChangesRequest
from .transports.filters import SelectorForm, in_selector_forms
from .wire.rows import rows_to_items

__all__ = ["ChangesIterator", "Page", "PageReader", "read_pages"]

Fetch = Callable[[str, dict[str, str], Any], Any]
"""`fetch(method, params, json_body)`: one request to `_changes`, its decoded answer."""

_STYLES = ("main_only", "all_docs")
_WHAT = "changes"


class ChangesIterator(Iterator[Change]):
    """The changes of a database up to its end, a page at a time; `db.changes(...)`
    builds one (see [Database.changes][cloudsync.Database.changes] for the options).

    Iterate it once. `last_seq` is where the read has got to: the seq of the last change
    handed out, or the server's `last_seq` once a page is used up. Pass it as `since` to
    a later read (or a subscription) to go on from there.

    Args:
        fetch: Performs one request (internal: the database passes its own).
        since: Where to start: `None`/`0` for the beginning, or a seq.
        limit: At most this many changes in all; `None` for no limit.
        page_size: Rows asked for per request.
        include_docs: Deliver each change with its document.
        selector: A Mango selector the changes must match (`filter=_selector`).
        doc_ids: Only these documents' changes (`filter=_doc_ids`).
        style: `"main_only"` (the winning revision) or `"all_docs"` (every leaf).

    Raises:
        ValueError: Options that do not go together, a `page_size` below 1, a negative
            `limit`, or an unknown `style`.
        TypeError: `doc_ids` given as one `str`, or `selector` not a mapping.
    """

    def __init__(
        self,
        fetch: Fetch,
        *,
        since: Any = None,
        limit: int | None = None,
        page_size: int = 1000,
        include_docs: bool = False,
        selector: Mapping[str, Any] | None = None,
        doc_ids: Sequence[str] | None = None,
        style: str = "main_only",
    ) -> None:
        if not isinstance(page_size, int) or isinstance(page_size, bool) or page_size < 1:
            raise ValueError("page_size must be a positive int")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
            raise ValueError("limit must be a non-negative int or None")
        if style not in _STYLES:
            raise ValueError(f"style must be one of {', '.join(_STYLES)}, not {style!r}")
        if selector is not None and doc_ids is not None:
            raise ValueError("use either selector or doc_ids, not both")
        if selector is not None and not isinstance(selector, Mapping):
            raise TypeError(f"selector must be a mapping, not {type(selector).__name__}")
        if isinstance(doc_ids, str):
            raise TypeError("doc_ids must be a sequence of ids, not a str")
        self.last_seq: Any = since
        """Where the read has got to (opaque): resume from here with `since=`."""
        self.limit = limit
        self.page_size = page_size
        self._fetch = fetch
        self._form = SelectorForm("auto")
        self._request = ChangesRequest(
            since=None if since == 0 else since,
            include_docs=include_docs,
            selector=dict(selector) if selector is not None else None,
            doc_ids=tuple(doc_ids) if doc_ids is not None else None,
            query_params={"style": style} if style != "main_only" else {},
            heartbeat=0,  # a normal feed answers at once: no heartbeat, no timeout
            timeout=None,
        )
        self._changes = self._read()

    def __iter__(self) -> ChangesIterator:
        return self

    def __next__(self) -> Change:
        return next(self._changes)

    def __repr__(self) -> str:
        return f"<ChangesIterator last_seq={self.last_seq!r}>"

    def _read(self) -> Iterator[Change]:
        for changes, end in read_pages(self._read_answer, self._request, self.page_size, self.limit):
            for change in changes:
                if change.seq is not None:
                    self.last_seq = change.seq
                yield change
            if end is not None:  # None: no seq anywhere yet, from `since=None`
                self.last_seq = end

    def _read_answer(self, request: ChangesRequest) -> Page:
        answer = in_selector_forms(self._form, request, "normal", self._fetch)
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list):
            raise InvalidResponse(f"{_WHAT}: expected {{'results': [...]}}, got {str(answer)[:80]!r}")
        changes = [item for item in rows_to_items(results, _WHAT) if isinstance(item, Change)]
        return Page(changes, len(results), answer.get("last_seq"), answer.get("pending"))


class Page(NamedTuple):
    """One answer of the normal feed, as `read_pages` needs it."""

    changes: list[Change]
    rows: int
    """The rows the answer held: fewer than asked for means the end."""
    last_seq: Any
    """The answer's `last_seq`; `None` when it sent none."""
    pending: Any = None
    """The answer's `pending` (`0`: the end), where the server sends it."""


PageReader = Callable[[ChangesRequest], Page]
"""Reads the one page `request` asks for."""


def read_pages(
    read_page: PageReader, request: ChangesRequest, page_size: int, limit: int | None = None
) -> Iterator[tuple[list[Change], Any]]:
    """The pages of the normal feed from `request.since` to its end as of now: each
    page's changes (empty ones too: a filtered page still moves the seq on) and where it
    ends (its `last_seq`, else its last change's seq, else where it began).

    The one paging loop of cloudsync: `db.changes()` reads its pages with whole requests,
    a one-shot replication through a transport (see `replication/feed.py`).

    Args:
        read_page: Reads one page.
        request: The first page's request (`since`, filters); `limit` is set per page.
        page_size: Rows asked for per page.
        limit: At most this many rows in all; `None` for no limit.

    Raises:
        InvalidResponse: A full page did not move `last_seq` (else it would be read forever).
    """
    remaining = limit
    since = request.since
    while remaining is None or remaining > 0:
        want = page_size if remaining is None else min(page_size, remaining)
        page = read_page(replace(request, since=since, limit=want))
        end = page.last_seq
        if end is None:
            end = next((c.seq for c in reversed(page.changes) if c.seq is not None), since)
        yield page.changes, end
        if remaining is not None:
            remaining -= page.rows
        if page.rows < want or page.pending == 0:
            return  # the end, as of now
        if end == since:
            raise InvalidResponse(f"{_WHAT}: a full page did not move last_seq from {since!r}")
        since = end
