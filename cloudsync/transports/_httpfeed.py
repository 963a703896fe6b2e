"""Shared plumbing for the HTTP feeds: a session whose sockets can be shut down from
another thread, auth, error translation, reading with liveness accounting.

Why a separate session: ``Response.close()`` does not unblock a thread blocked in
``recv`` (nor does anything before the response headers arrive). Our connection classes
hand their socket to the transport the moment a request is sent on them, so ``close()``
can ``shutdown()`` it, which wakes the reader with an error at once. It also keeps a
60-second feed from holding a slot of the document client's connection pool.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import requests
import urllib3.connection
import urllib3.connectionpool
from requests.adapters import HTTPAdapter

from .. import _json
from .._http import redact, translate
from ..errors import CloudSyncError, InvalidResponse

if TYPE_CHECKING:
    from .base import ChangesRequest, Transport

_tls = threading.local()


def _track(sock: Any) -> None:
    sink = getattr(_tls, "sink", None)
    if sink is not None and sock is not None:
        sink(sock)


def _sent() -> None:
    on_sent = getattr(_tls, "on_sent", None)
    if on_sent is not None:
        on_sent()


@contextlib.contextmanager
def on_request_sent(callback: Callable[[], None]) -> Iterator[None]:
    """Call ``callback`` each time a feed request made on this thread has been written to
    its socket (before its answer is awaited)."""
    _tls.on_sent = callback
    try:
        yield
    finally:
        _tls.on_sent = None


class _TrackedHTTPConnection(urllib3.connection.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _track(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        _track(self.sock)  # a kept-alive connection: connect() is not called again
        super().request(*args, **kwargs)
        _sent()


class _TrackedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _track(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        _track(self.sock)
        super().request(*args, **kwargs)
        _sent()


class _TrackedHTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _TrackedHTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection


class _TrackingAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _TrackedHTTPPool, "https": _TrackedHTTPSPool}
        self.poolmanager.key_fn_by_scheme = dict(self.poolmanager.key_fn_by_scheme)


def shutdown(sock: socket.socket) -> None:
    """Wake any thread blocked on ``sock`` (close() alone does not)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class FeedSession:
    """A small session for one transport's feed connections (one at a time)."""

    def __init__(self) -> None:
        self.session = requests.Session()
        self.session.trust_env = False
        adapter = _TrackingAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def open(
        self,
        transport: Transport,
        token: int,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any],
        json: Any,
        headers: Mapping[str, str],
        request: ChangesRequest,
    ) -> requests.Response:
        """Open the feed (2xx, unread) or raise a cloudsync error. Honours ``transport.close()``."""
        http = transport.http
        url = http.base_url + path
        body = None
        send_headers = {"User-Agent": http.session.headers.get("User-Agent", "cloudsync")}
        send_headers["Accept-Encoding"] = "identity"  # pouchdb-server buffers gzipped feeds
        if json is not None:
            body = _json.dumps(json)
            send_headers["Content-Type"] = "application/json"
        send_headers.update(headers)
        renewed = False
        while True:
            hdrs = dict(send_headers)
            if http.auth is not None:
                hdrs.update(http.auth.headers(http))
            if transport._closed_since(token):
                from ..errors import NetworkError

                raise NetworkError("feed closed before connecting", sent=False)
            _tls.sink = lambda sock: transport._set_abort(token, lambda: shutdown(sock))
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    data=body,
                    headers=hdrs,
                    timeout=(request.connect_timeout, request.stall_timeout),
                    verify=getattr(http, "verify", True),
                    stream=True,
                    allow_redirects=False,
                )
            except CloudSyncError:
                raise
            except Exception as exc:
                raise translate(exc, f"{method} {path}") from exc
            finally:
                _tls.sink = None
            if http.resend_after(response, method, url, may_renew=not renewed):
                renewed = True
                continue
            return response

    def drop_idle(self) -> None:
        """Close the kept-alive connections (the pools start afresh). After a connection
        failed, an idle one to the same server is suspect too: a dead NAT entry or a
        half-open path kills all of them, and reusing one costs another stall window."""
        self.session.close()

    def close(self) -> None:
        self.session.close()


def read_chunks(transport: Transport, token: int, response: requests.Response, what: str) -> Iterator[bytes]:
    """The body as it arrives (not waiting for a full buffer), counted for liveness."""
    raw = response.raw
    try:
        while True:
            try:
                chunk = raw.read1(65536)
            except Exception as exc:
                raise translate(exc, what) from exc
            if not chunk:
                return
            transport._received(len(chunk))
            yield chunk
    finally:
        transport._end(token)
        response.close()


def http_request_parts(
    request: ChangesRequest, feed: str, selector_in: str
) -> tuple[str, dict[str, str], Any]:
    """``(method, params, json_body)`` for a feed, with filters in the form the server wants.

    ``selector_in`` is ``"body"`` (CouchDB 3, our server: POST ``{"selector": ...}``) or
    ``"query"`` (pouchdb-server: ``?filter=_selector&selector=<json>``).
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
    """Which form filters take on this server, learned once (``"auto"`` tries the body first)."""

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


def open_feed(
    transport: Transport,
    session: FeedSession,
    form: SelectorForm,
    token: int,
    request: ChangesRequest,
    feed: str,
    headers: Mapping[str, str],
) -> requests.Response:
    """Open ``_changes`` for ``feed``, falling back from the POST filter form to the query
    form once when the server refuses it (pouchdb-server 404s a POST with a selector)."""
    from ..errors import BadRequest, NotFound

    path = transport.database.path + "/_changes"
    forms = form.forms(request)
    for index, current in enumerate(forms):
        method, params, body = http_request_parts(request, feed, current)
        try:
            response = session.open(
                transport, token, method, path, params=params, json=body, headers=headers, request=request
            )
        except (NotFound, BadRequest):
            if index + 1 < len(forms):
                continue
            raise
        if len(forms) > 1:
            form.value = current  # learned: keep using the form that worked
        check_feed_answer(response, feed, method, transport.http.base_url + path)
        return response
    raise AssertionError("unreachable")


#: Media types a JSON feed (longpoll, normal, continuous) may come as. CouchDB and
#: pouchdb-server send application/json; CouchDB falls back to text/plain when the
#: request does not accept JSON; some proxies drop the header.
_JSON_TYPES = frozenset({"", "application/json", "text/plain"})


def check_feed_answer(response: requests.Response, feed: str, method: str, url: str) -> None:
    """Raise a retryable :class:`InvalidResponse` (closing the response) unless
    ``response`` is a feed of the kind asked for: a 1xx, a 204 or any other status that is
    not 2xx, or a Content-Type that does not fit (``text/event-stream`` for eventsource,
    JSON for the others; an HTML page from a proxy or a login portal never is). Taking
    such an answer for a clean end makes the subscription reconnect at once, in a loop."""
    status = response.status_code
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
    raise InvalidResponse(f"{status}{phrase}: {what}, not a {feed} feed ({method} {redact(url)})")

