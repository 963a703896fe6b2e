"""What the HTTP feeds share: the request for a feed (filters in the form the server
takes), opening it on the `FeedConnection`, and checking that the answer is a feed of
the kind asked for."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from .. import _json
from ..errors import BadRequest, InvalidResponse, NotFound

if TYPE_CHECKING:
    from .._http.feeds import FeedResponse
    from .base import ChangesRequest
    from .connection import FeedConnection

T = TypeVar("T")


def http_request_parts(
    request: ChangesRequest, feed: str, selector_in: str
) -> tuple[str, dict[str, str], Any]:
    """`(method, params, json_body)` for a feed, with filters in the form the server wants.

    `selector_in` is `"body"` (CouchDB 3, our server: POST `{"selector": ...}`) or
    `"query"` (pouchdb-server: `?filter=_selector&selector=<json>`).
    """
    params = {"feed": feed, **request.filter_params()}
    body: dict[str, Any] = {}
    if request.selector is not None:
        params["filter"] = "_selector"
        if selector_in == "query":
            params["selector"] = _json.dumps(request.selector).decode()
        else:
            body["selector"] = request.selector
    elif request.doc_ids is not None:
        params["filter"] = "_doc_ids"
        if selector_in == "query":
            params["doc_ids"] = _json.dumps(list(request.doc_ids)).decode()
        else:
            body["doc_ids"] = list(request.doc_ids)
    if body:
        return "POST", params, body
    return "GET", params, None


class SelectorForm:
    """Which form filters take on this server, learned once (`"auto"` tries the body first)."""

    def __init__(self, selector_in: str) -> None:
        if selector_in not in ("auto", "body", "query"):
            raise ValueError("selector_in must be 'auto', 'body' or 'query'")
        self.value = selector_in

    def forms(self, request: ChangesRequest) -> list[str]:
        if request.selector is None and request.doc_ids is None:
            return ["body"]
        if self.value == "auto":
            return ["body", "query"]
        return [self.value]


def in_selector_forms(
    form: SelectorForm, request: ChangesRequest, feed: str, send: Callable[[str, dict[str, str], Any], T]
) -> T:
    """`send(method, params, json_body)` for the request in the filter form the server
    takes: after a refusal of the POST form (pouchdb-server 404s a POST with a selector)
    once more in the query form, which `form` then keeps."""
    forms = form.forms(request)
    for index, current in enumerate(forms):
        method, params, body = http_request_parts(request, feed, current)
        try:
            result = send(method, params, body)
        except (NotFound, BadRequest):
            if index + 1 < len(forms):
                continue
            raise
        if len(forms) > 1:
            form.value = current  # learned: keep using the form that worked
        return result
    raise AssertionError("unreachable")


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

