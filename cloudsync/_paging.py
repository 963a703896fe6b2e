"""Lazy pagers: one page in memory at a time.

- Key-ordered results (`_all_docs`, views) page by asking for one row more than a page
  and starting the next page at that row (`startkey` + `startkey_docid`), the
  approach CouchDB documents; no `skip` over large offsets.
- `_find` pages by `bookmark`. A server that sends no bookmark (pouchdb-server 4.2.0)
  or repeats one is paged by `skip` instead, which is correct for a result order that is
  stable between requests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from . import _json
from .errors import InvalidResponse

__all__ = ["find_pages", "keyed_rows"]

log = logging.getLogger("cloudsync")

Fetch = Callable[[dict[str, Any]], dict[str, Any]]


def keyed_rows(
    fetch: Fetch, params: dict[str, Any], *, page_size: int, limit: int | None
) -> Iterator[dict[str, Any]]:
    """Rows of a key-ordered result, paged by `startkey`/`startkey_docid`.

    `fetch(params)` performs one request and returns the decoded body; `params` hold
    JSON-encoded keys already. A server that ignores `startkey_docid` (pouchdb-server)
    is detected by the page not starting at the row asked for; from then on the pager
    starts at the key and skips the rows of that key it has already returned.
    """
    remaining = limit
    params = dict(params)
    expected: tuple[Any, Any] | None = None  # (key, id) the next page must start with
    by_skip = False
    run_key, run_length = b"", 0  # the trailing run of equal keys returned so far
    while True:
        want = page_size if remaining is None else min(page_size, remaining)
        if want <= 0:
            return
        params["limit"] = want + 1
        rows = fetch(params).get("rows", [])
        if not by_skip and expected is not None and rows and (rows[0].get("key"), rows[0].get("id")) != expected:
            log.debug("server ignored startkey_docid; paging by startkey and skip instead")
            by_skip = True
            params.pop("startkey_docid", None)
            params["skip"] = run_length if _json.dumps(expected[0]) == run_key else 0
            rows = fetch(params).get("rows", [])
        page, extra = rows[:want], rows[want:]
        for row in page:
            key = _json.dumps(row.get("key"))
            run_key, run_length = (key, run_length + 1) if key == run_key else (key, 1)
            yield row
        if remaining is not None:
            remaining -= len(page)
        if not extra:
            return
        following = extra[0]
        key = _json.dumps(following.get("key"))
        params["startkey"] = key.decode()
        if by_skip:
            params["skip"] = run_length if key == run_key else 0
        else:
            params.pop("skip", None)
            expected = (following.get("key"), following.get("id"))
            if "id" in following:
                params["startkey_docid"] = following["id"]


def find_pages(
    fetch: Fetch, body: dict[str, Any], *, page_size: int, limit: int | None, bookmark: str | None = None
) -> Iterator[dict[str, Any]]:
    """Documents of a `_find` query, paged by bookmark (or by `skip` without one).

    A query resumed from a kept `bookmark` cannot fall back to `skip` (its absolute
    position is unknown): a server that then sends no usable bookmark is an error.
    """
    remaining = limit
    body = dict(body)
    offset = body.pop("skip", 0)  # absolute position of the next document
    resumed = bookmark is not None
    skip_after_bookmark = offset if resumed else 0  # counted from the kept bookmark, once
    use_skip = False
    while True:
        want = page_size if remaining is None else min(page_size, remaining)
        if want <= 0:
            return
        request = dict(body, limit=want)
        if bookmark is None:
            if offset:
                request["skip"] = offset
        else:
            request["bookmark"] = bookmark
            if skip_after_bookmark:
                request["skip"], skip_after_bookmark = skip_after_bookmark, 0
        docs = (answer := fetch(request)).get("docs", [])
        yield from docs
        offset += len(docs)
        if remaining is not None:
            remaining -= len(docs)
        if len(docs) < want:
            return
        next_bookmark = answer.get("bookmark")
        if use_skip or not next_bookmark or next_bookmark in ("nil", bookmark):
            if resumed:
                raise InvalidResponse("_find: the server sent no bookmark to continue a resumed query with")
            if not use_skip:
                log.debug("_find: server sent no usable bookmark; paging by skip instead")
                use_skip = True
            bookmark = None
        else:
            bookmark = next_bookmark
