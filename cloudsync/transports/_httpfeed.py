"""What the HTTP feeds share: opening a feed on the `FeedConnection` (its filters in the
form the server takes, see `filters.py`), and checking that the answer is a feed of the
kind asked for."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import InvalidResponse
from .filters import SelectorForm, in_selector_forms

if TYPE_CHECKING:
    from .._http.feeds import FeedResponse
    from .base import ChangesRequest
    from .connection import FeedConnection


def open_feed(
    connection: FeedConnection,
    form: SelectorForm,
    request: ChangesRequest,
    feed: str,
    headers: Mapping[str, str],
) -> FeedResponse:
    """Open `_changes` for `feed`, in the filter form the server takes (see
    `in_selector_forms`)."""

    def send(method: str, params: dict[str, str], body: Any) -> FeedResponse:
        response = connection.open(
            method, params=params, json=body, headers=headers,
            connect_timeout=request.connect_timeout, read_timeout=request.stall_timeout, pool=feed,
        )
        check_feed_answer(response, feed, method, connection.safe_url)
        return response

    return in_selector_forms(form, request, feed, send)


_JSON_TYPES = frozenset({"", "application/json", "text/plain"})
"""Media types a JSON feed (longpoll, normal, continuous) may come as. CouchDB and
pouchdb-server send application/json; CouchDB falls back to text/plain when the
request does not accept JSON; some proxies drop the header."""


def check_feed_answer(response: FeedResponse, feed: str, method: str, url: str) -> None:
    """Raise a retryable `InvalidResponse` (closing the response) unless
    `response` is a feed of the kind asked for: a 1xx, a 204 or any other status that is
    not 2xx, or a Content-Type that does not fit (`text/event-stream` for eventsource,
    JSON for the others; an HTML page from a proxy or a login portal never is). Taking
    such an answer for a clean end makes the subscription reconnect at once, in a loop."""
    status = response.status
    mime = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if feed == "eventsource":
        fits = mime == "text/event-stream"
    else:
        fits = mime in _JSON_TYPES or mime.endswith("+json")
    if 200 <= status < 300 and status != 204 and fits:
        return
    response.close()
    if status == 204:
        what = "no content"
    elif 200 <= status < 300:
        what = f"Content-Type {mime or 'missing'}"
    else:
        what = "not a success status"
    phrase = f" {response.reason}" if response.reason else ""
    raise InvalidResponse(f"{status}{phrase}: {what}, not a {feed} feed ({method} {url})")

