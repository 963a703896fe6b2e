"""Change feeds over HTTP: streamed answers whose socket another thread can shut down.

Why a separate session: `Response.close()` does not unblock a thread blocked in `recv`
(nor does anything before the response headers arrive). Our connection classes hand their
socket to the caller the moment a request is sent on them, so an abort can `shutdown()`
it, which wakes the reader with an error at once. It also keeps a 60-second feed from
holding a slot of the document client's connection pool.

Headers, credentials (renewed once after a 401), the status-to-error mapping and
exception translation are the ones every other request gets (`HTTP`, `answer_error`,
`translate`).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import requests
import urllib3.connection
import urllib3.connectionpool
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from .. import _json
from ..errors import CloudSyncError, NetworkError
from . import HTTP, answer_error, redact, translate

__all__ = ["FeedEndpoint", "FeedResponse", "on_request_sent"]

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
    """Call `callback` each time a feed request made on this thread has been written to
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


def _shutdown(sock: socket.socket) -> None:
    """Wake any thread blocked on `sock` (close() alone does not)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class FeedResponse:
    """An open feed answer (a success, its body unread): status, headers, and the body as
    it arrives, with errors translated."""

    def __init__(self, response: requests.Response, what: str, on_bytes: Callable[[int], None],
                 on_done: Callable[[], None]) -> None:
        self._response = response
        self._what = what
        self._on_bytes = on_bytes
        self._on_done = on_done
        self.status: int = response.status_code
        self.reason: str = response.reason or ""
        self.headers: Mapping[str, str] = response.headers
        """Case-insensitive."""

    def chunks(self) -> Iterator[bytes]:
        """The body as it arrives (not waiting for a full buffer), each chunk reported to
        the connection's liveness callback. Closes the answer at the end."""
        raw = self._response.raw
        try:
            while True:
                try:
                    chunk = raw.read1(65536)
                except Exception as exc:
                    raise translate(exc, self._what) from exc
                if not chunk:
                    return
                self._on_bytes(len(chunk))
                yield chunk
        finally:
            self._on_done()
            self._response.close()

    def close(self) -> None:
        self._response.close()


class FeedEndpoint:
    """A database's `_changes` feed, as the HTTP layer reaches it: the URL, headers with
    the client's credentials, and a session of its own for streamed answers.

    One per subscription. Each `pool` (a name) has a session of its own holding one
    connection at a time: a catch-up request and the feed after it never share one."""

    def __init__(self, http: HTTP, db_path: str, feed: str = "_changes") -> None:
        self._http = http
        self.base_url = http.base_url
        self.url = f"{http.base_url}{db_path}/{feed}"
        """The feed's URL (`http(s)://host/db/_changes`; `http(s)://host/_db_updates` for
        the server's database events: `db_path=""`, `feed="_db_updates"`)."""
        self.safe_url = redact(self.url)
        """The URL without user info, for messages."""
        self.verify = http.verify
        """TLS verification: True (the default CA bundle), False, or a CA bundle path."""
        self._sessions: dict[str, requests.Session] = {}
        self._lock = threading.Lock()

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Headers for a feed request: the client's `User-Agent`, `Accept-Encoding:
        identity` (pouchdb-server buffers gzipped feeds), `extra`, and the credentials."""
        headers = {"User-Agent": self._http.session.headers.get("User-Agent", "cloudsync"),
                   "Accept-Encoding": "identity"}
        if extra:
            headers.update(extra)
        headers.update(self._http.auth_headers())
        return headers

    def renew(self) -> bool:
        """Renew the credentials after a 401; whether to try once more."""
        return self._http.renew()

    def answer_error(self, status: int, phrase: str | None, headers: Mapping[str, str],
                     content: bytes | None, *, url: str | None = None) -> CloudSyncError | None:
        """The error an answer to a GET of the feed (or `url`) stands for (see `answer_error`)."""
        return answer_error(status, phrase, CaseInsensitiveDict(headers), lambda: content, "GET", url or self.url)

    def open(
        self,
        method: str,
        *,
        params: Mapping[str, Any],
        json: Any,
        headers: Mapping[str, str],
        timeout: tuple[float, float],
        pool: str,
        set_abort: Callable[[Callable[[], None]], bool],
        closed: Callable[[], bool],
        on_bytes: Callable[[int], None],
        on_done: Callable[[], None],
    ) -> FeedResponse:
        """Open the feed (a success, body unread) or raise a cloudsync error. The socket's
        abort goes to `set_abort` the moment it exists; `closed()` true refuses to send."""
        body = None
        extra = {}
        if json is not None:
            body = _json.dumps(json)
            extra["Content-Type"] = "application/json"
        extra.update(headers)
        what = f"{method} {urllib.parse.urlsplit(self.url).path}"
        renewed = False
        while True:
            send_headers = self.headers(extra)
            if closed():
                raise NetworkError("feed closed before connecting", sent=False)
            _tls.sink = lambda sock: set_abort(lambda: _shutdown(sock))
            try:
                response = self._session(pool).request(
                    method,
                    self.url,
                    params=params,
                    data=body,
                    headers=send_headers,
                    timeout=timeout,
                    verify=self.verify,
                    stream=True,
                    allow_redirects=False,
                )
            except CloudSyncError:
                raise
            except Exception as exc:
                raise translate(exc, what) from exc
            finally:
                _tls.sink = None
            if self._http.resend_after(response, method, self.url, may_renew=not renewed):
                renewed = True
                continue
            return FeedResponse(response, what, on_bytes, on_done)

    def reachable(self, timeout: float) -> bool | None:
        """Whether the server accepts TCP connections now (a bare connect, closed at
        once), or `None` when its address cannot be told."""
        parts = urllib.parse.urlsplit(self.base_url)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return None
        if not parts.hostname:
            return None
        try:
            socket.create_connection((parts.hostname, port), timeout=timeout).close()
        except OSError:
            return False
        return True

    def _session(self, pool: str) -> requests.Session:
        with self._lock:
            session = self._sessions.get(pool)
            if session is None:
                session = self._sessions[pool] = requests.Session()
                session.trust_env = False
                adapter = _TrackingAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
            return session

    def drop_idle(self) -> None:
        """Close the kept-alive connections (the pools start afresh)."""
        with self._lock:
            sessions = list(self._sessions.values())
        for session in sessions:
            session.close()

    def __repr__(self) -> str:
        return f"FeedEndpoint({self.safe_url!r})"
