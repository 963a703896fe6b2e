"""What a transport is handed for one connection: a `FeedConnection`."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import CloudSyncError

if TYPE_CHECKING:
    from .._http.feeds import FeedEndpoint, FeedResponse

__all__ = ["FeedConnection"]


class FeedConnection:
    """One connection attempt's view of the feed, handed to `Transport.stream`.

    It carries everything a transport needs, so a transport never looks at the
    `Database`:

    - where: `url` (the database's `_changes` URL), `safe_url`, `verify`;
    - how: `headers()` (with the client's credentials), `open()` (a streamed HTTP
      request through cloudsync's HTTP layer: auth, one renewal after a 401, errors
      mapped), `renew_credentials()` and `answer_error()` for a WebSocket handshake;
    - `set_abort(abort)`: how `Transport.close()`, called from another thread, makes a
      blocked read return (shut the socket down). A close that came first is never
      lost: `set_abort` then calls `abort` at once and returns `False`;
    - `received(count)`: liveness. The subscription's stall watchdog counts the items a
      transport yields; report bytes too when silence between items is normal
      (heartbeats).

    A subscription without an HTTP database (a test double) hands a connection with no
    endpoint: `url`, `headers()` and `open()` then raise `RuntimeError`.

    [Transport][cloudsync.Transport] makes one per connection; a transport never builds
    one, except to test it.

    Args:
        endpoint: The database's feed endpoint, or `None` (a stand-in database).
        on_bytes: Called with the count of bytes `received`.
        on_open: Called once the connection is `opened`.
        closed: Begin closed (the transport was shut down already).
    """

    def __init__(
        self,
        endpoint: FeedEndpoint | None = None,
        *,
        on_bytes: Callable[[int], None] | None = None,
        on_open: Callable[[], None] | None = None,
        closed: bool = False,
    ) -> None:
        self._endpoint = endpoint
        self._on_bytes = on_bytes
        self._on_open = on_open
        self._lock = threading.Lock()
        self._abort: Callable[[], None] | None = None
        self._closed = closed

    # -- where -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The database's `_changes` URL (`http://host:port/db/_changes`)."""
        return self._need_endpoint().url

    @property
    def safe_url(self) -> str:
        """`url` without user info, for messages."""
        return self._need_endpoint().safe_url

    @property
    def verify(self) -> bool | str:
        """The client's TLS verification: `True`, `False` or a CA bundle path."""
        return self._need_endpoint().verify

    # -- how ---------------------------------------------------------------------------
    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Headers for a request to the feed: cloudsync's `User-Agent`,
        `Accept-Encoding: identity`, `extra`, and the client's credentials.

        Args:
            extra: More headers, such as `Accept`.

        Returns:
            The headers.
        """
        return self._need_endpoint().headers(extra)

    def open(
        self,
        method: str = "GET",
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        pool: str = "feed",
    ) -> FeedResponse:
        """Send a request to `url` and return its answer, streamed (body unread).

        Its socket is registered with `set_abort`; reading its `chunks()` reports
        bytes to `received`.

        Args:
            method: `GET`, or `POST` with a `json` body.
            params: Query parameters.
            json: A body, sent as JSON.
            headers: Headers on top of `headers()`.
            connect_timeout: Seconds to connect.
            read_timeout: Seconds a read may wait for a byte.
            pool: Requests with different pools never share a kept-alive connection
                (a catch-up request and the feed opened after it, say).

        Returns:
            The answer: `status`, `headers`, `chunks()`, `close()`.

        Raises:
            CloudSyncError: The error its status stands for (after one renewal of the
                credentials on a 401), a network error, or `NetworkError` when the
                connection was closed first.
        """
        return self._need_endpoint().open(
            method,
            params=params or {},
            json=json,
            headers=headers or {},
            timeout=(connect_timeout, read_timeout),
            pool=pool,
            set_abort=self.set_abort,
            closed=lambda: self.closed,
            on_bytes=self.received,
            on_done=self.finish,
        )

    def renew_credentials(self) -> bool:
        """After a 401 (a refused WebSocket handshake, a close for "unauthorized"): renew
        the client's credentials.

        Returns:
            Whether trying again may succeed.
        """
        return self._need_endpoint().renew()

    def answer_error(
        self,
        status: int,
        phrase: str | None,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        url: str | None = None,
    ) -> CloudSyncError | None:
        """The error an HTTP answer (a WebSocket handshake's, say) stands for, by the same
        mapping as every other request's.

        Args:
            status: The answer's status.
            phrase: Its reason phrase.
            headers: Its headers (`Retry-After`, the request id).
            body: Its body (CouchDB's `error` and `reason`).
            url: The URL for the message; `url` by default.

        Returns:
            `None` for a 2xx; the typed `HTTPError` for a 4xx/5xx; `InvalidResponse` for
                a redirect (never followed) or an interim answer.
        """
        return self._need_endpoint().answer_error(status, phrase, headers, body, url=url)

    def drop_idle(self) -> None:
        """Close kept-alive connections to the server: after a failure they are suspect."""
        if self._endpoint is not None:
            self._endpoint.drop_idle()

    # -- abort and liveness ------------------------------------------------------------
    def set_abort(self, abort: Callable[[], None] | None) -> bool:
        """Register how to abort this connection from another thread (replacing any before).

        Args:
            abort: Makes a blocked read return, e.g. shuts the socket down; `None`
                unregisters.

        Returns:
            `True` when registered; `False` when the connection was closed already:
                `abort` has then been called, and the transport should stop.
        """
        with self._lock:
            if not self._closed:
                self._abort = abort
                return True
        if abort is not None:
            with contextlib.suppress(Exception):
                abort()
        return False

    @property
    def closed(self) -> bool:
        """Whether the transport was closed since this connection began."""
        with self._lock:
            return self._closed

    def received(self, count: int) -> None:
        """Report bytes read (heartbeats included): the connection is alive.

        Args:
            count: How many bytes.
        """
        if self._on_bytes is not None:
            self._on_bytes(count)

    def opened(self) -> None:
        """Report that the connection is established (the subscription is streaming)."""
        if self._on_open is not None:
            self._on_open()

    # -- for Transport -----------------------------------------------------------------
    def abort(self) -> None:
        """Close this connection: run its registered abort; later `set_abort` calls fail.
        Called by `Transport.close()`."""
        with self._lock:
            self._closed = True
            abort, self._abort = self._abort, None
        if abort is not None:
            with contextlib.suppress(Exception):  # best effort: the socket may be gone already
                abort()

    def finish(self) -> None:
        """The connection's reading is over: a later close must not touch its socket."""
        with self._lock:
            self._abort = None

    def _need_endpoint(self) -> FeedEndpoint:
        if self._endpoint is None:
            raise RuntimeError("this subscription's database has no HTTP feed (a stand-in without a client)")
        return self._endpoint

    def __repr__(self) -> str:
        where = self._endpoint.safe_url if self._endpoint is not None else "no endpoint"
        return f"<FeedConnection {where}{' closed' if self.closed else ''}>"
