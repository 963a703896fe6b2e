"""Reading `/_all_dbs` a part at a time: the parameters CouchDB takes there (`limit`,
`skip`, `start_key`, `end_key`, `descending`), and paging through every name.

A server that ignores them (pouchdb-server 4.2.0 answers every name whatever it is
asked) is recognised by an answer longer than `limit` or holding names outside the
range; the parameters are then applied here, to its whole answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from . import _json
from .errors import InvalidResponse

__all__ = ["database_names", "every_database_name"]

log = logging.getLogger("cloudsync")

Fetch = Callable[[dict[str, Any]], Any]
"""`fetch(params)`: one `GET /_all_dbs`, the decoded answer."""


def _check(limit: int | None, skip: int, start_key: str | None, end_key: str | None) -> None:
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ValueError("limit must be a positive int")
    if not isinstance(skip, int) or isinstance(skip, bool) or skip < 0:
        raise ValueError("skip must be an int >= 0")
    for name, key in (("start_key", start_key), ("end_key", end_key)):
        if key is not None and not isinstance(key, str):
            raise TypeError(f"{name} must be a database name (a str)")


def database_names(
    fetch: Fetch, *, limit: int | None, skip: int, start_key: str | None, end_key: str | None, descending: bool
) -> list[str]:
    """The names `_all_dbs` answers for these parameters (applied here if the server ignored them)."""
    _check(limit, skip, start_key, end_key)
    params: dict[str, Any] = {}
    if descending:
        params["descending"] = "true"
    if skip:
        params["skip"] = skip
    if limit is not None:
        params["limit"] = limit
    for name, key in (("start_key", start_key), ("end_key", end_key)):
        if key is not None:
            params[name] = _json.dumps(key).decode()
    answer = fetch(params)
    if not isinstance(answer, list) or not all(isinstance(n, str) for n in answer):
        raise InvalidResponse("_all_dbs answered something other than a list of names")
    low, high = (end_key, start_key) if descending else (start_key, end_key)
    outside = any((low is not None and n < low) or (high is not None and n > high) for n in answer)
    if not outside and (limit is None or len(answer) <= limit):
        return answer
    log.debug("_all_dbs: the server ignored the paging parameters; applying them here")
    chosen = sorted(n for n in answer if (low is None or n >= low) and (high is None or n <= high))
    if descending:
        chosen.reverse()
    return chosen[skip: None if limit is None else skip + limit]


def every_database_name(
    fetch: Fetch, *, page_size: int, start_key: str | None, end_key: str | None
) -> Iterator[str]:
    """Every name from `start_key` to `end_key`, `page_size` per request: each page asks
    for one name more, which starts the next page."""
    if not isinstance(page_size, int) or isinstance(page_size, bool) or page_size < 1:
        raise ValueError("page_size must be a positive int")
    _check(None, 0, start_key, end_key)

    def names() -> Iterator[str]:
        start = start_key
        while True:
            page = database_names(fetch, limit=page_size + 1, skip=0, start_key=start, end_key=end_key,
                                  descending=False)
            yield from page[:page_size]
            if len(page) <= page_size:
                return
            start = page[page_size]

    return names()
