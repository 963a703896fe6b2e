"""The form a feed's filters take on the wire: a Mango selector or document ids in a
POST body (CouchDB 3, our server) or in the query string (pouchdb-server), learned once
per transport. Shared by the HTTP transports and the one-shot read of `db.changes()`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .. import _json
from ..errors import BadRequest, NotFound

if TYPE_CHECKING:
    from .base import ChangesRequest

__all__ = ["SelectorForm", "http_request_parts", "in_selector_forms"]

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
