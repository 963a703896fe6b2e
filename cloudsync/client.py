"""The entry point: [Client][cloudsync.Client], one connection pool to one server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from ._all_dbs import database_names, every_database_name
from ._http import DEFAULT_TIMEOUT, HTTP
from ._paths import db_path, validate_db_name
from ._retry import RetryPolicy
from .auth import Auth, BasicAuth
from .database import Database
from .db_updates import subscribe_db_updates
from .errors import HTTPError, NotFound, PreconditionFailed, TLSError, TransportError

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's from 3.11; annotations only, never at run time

    from ._retry import ReconnectPolicy
    from .checkpoint import CheckpointStore
    from .subscription import Subscription
    from .subscription_options import SubscriptionOptions
    from .transports import Transport

__all__ = ["Client"]

DEFAULT_URL = "http://127.0.0.1:5984"


class Client:
    """A synchronous client for one CouchDB-compatible server.

    One `requests.Session` with keep-alive serves every call; use the client as a context
    manager or call [`close()`][cloudsync.Client.close].

    Args:
        url: The server's URL. It may carry credentials (`http://user:pw@host:5984`);
            they become [BasicAuth][cloudsync.BasicAuth] unless `auth` is given. `None`
            uses the `COUCHDB_URL` environment variable, then `http://127.0.0.1:5984`.
        auth: `(username, password)` for basic auth, or any [Auth][cloudsync.Auth]
            ([CookieAuth][cloudsync.CookieAuth], [BearerTokenAuth][cloudsync.BearerTokenAuth]).
        timeout: Seconds, one number or `(connect, read)`.
        retry: How a request that failed transiently is retried: a
            [RetryPolicy][cloudsync.RetryPolicy]; `None` for the default one.
        verify: For `https://` only: `True` checks the server's certificate against the
            default CA bundle, a path uses that CA bundle file (or directory), and `False`
            turns verification off. It applies to documents and every change-feed
            transport (WebSocket included). A failed verification raises
            [TLSError][cloudsync.TLSError], which is not retried.

    Raises:
        ValueError: `url` is not an `http://` or `https://` URL with a host.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        auth: Auth | tuple[str, str] | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        verify: bool | str = True,
    ) -> None:
        raw = url if url is not None else os.environ.get("COUCHDB_URL", DEFAULT_URL)
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("Client url must be an http:// or https:// URL with a host")
        if auth is None and parts.username is not None:
            auth = BasicAuth(unquote(parts.username), unquote(parts.password or ""))
        elif isinstance(auth, tuple):
            auth = BasicAuth(*auth)
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        netloc = f"{host}:{parts.port}" if parts.port else host
        self.url = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self._http = HTTP(self.url, auth=auth, timeout=timeout, retry=retry, verify=verify)

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool. Open subscriptions are not closed by this."""
        self._http.close()

    @property
    def auth(self) -> Auth | None:
        return self._http.auth

    # -- server ---------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """The server's welcome document (`GET /`): version, vendor."""
        return self._http.request("GET", "/")

    def up(self) -> bool:
        """Whether the server is up: it answers `GET /_up` (or `GET /`, where there is no
        `/_up`) with success. Tried once, without retries: it says how the server is now.

        Returns:
            `True` on success; `False` when the server cannot be reached, does not
                answer in time, or answers an error status (such as 503 in maintenance
                mode).

        Raises:
            TLSError: The server's certificate or the TLS handshake failed (a
                configuration to fix, not a server that is down).
            InvalidResponse: The answer was not a CouchDB-style one (a redirect, a body
                that is not JSON): the URL leads somewhere else.
        """
        once = RetryPolicy.never()
        try:
            try:
                self._http.request("GET", "/_up", retry=once)
            except NotFound:
                self._http.request("GET", "/", retry=once)
        except TLSError:
            raise
        except (HTTPError, TransportError):
            return False
        return True

    def uuids(self, count: int = 1) -> list[str]:
        """Fresh ids from the server's `/_uuids`.

        Args:
            count: How many.
        """
        return self._http.request("GET", "/_uuids", params={"count": count})["uuids"]

    # -- databases -------------------------------------------------------------------
    def database(self, name: str) -> Database:
        """A handle on a database. No I/O: the database may not exist yet.

        Args:
            name: The database's name.

        Raises:
            ValueError: `name` is not a valid database name.
        """
        validate_db_name(name)
        return Database(self._http, name)

    def create_database(self, name: str, *, exist_ok: bool = False, partitioned: bool = False) -> Database:
        """Create a database and return its handle.

        Args:
            name: The database's name.
            exist_ok: Return the handle when the database exists already.
            partitioned: Create a partitioned database.

        Returns:
            A handle on the database.

        Raises:
            PreconditionFailed: The database exists, and `exist_ok` is false.
        """
        db = self.database(name)
        params = {"partitioned": "true"} if partitioned else None
        try:
            self._http.request("PUT", db.path, params=params)
        except PreconditionFailed:
            if not exist_ok:
                raise
        else:
            db.partitioned = partitioned
        return db

    def delete_database(self, name: str, *, missing_ok: bool = False) -> None:
        """Delete a database.

        Args:
            name: The database's name.
            missing_ok: Return quietly when there is no such database.

        Raises:
            NotFound: There is no such database (as CouchDB 3 answers), and `missing_ok`
                is false.
        """
        path = db_path(name)
        # Some servers (pouchdb-server) answer 200 for a missing database; ask first so
        # every server behaves like CouchDB 3.
        try:
            self._http.request("HEAD", path)
            self._http.request("DELETE", path)
        except NotFound:
            if not missing_ok:
                raise

    def databases(
        self,
        *,
        limit: int | None = None,
        skip: int = 0,
        start_key: str | None = None,
        end_key: str | None = None,
        descending: bool = False,
    ) -> list[str]:
        """Database names (`/_all_dbs`), sorted; all of them without arguments.

        Args:
            limit: At most this many names.
            skip: Skip this many names first.
            start_key: The first name of the range (the highest, with `descending`).
            end_key: The last name of the range (included).
            descending: Names in descending order.

        Returns:
            The names. A server that ignores these parameters (pouchdb-server 4.2.0)
                has them applied to its whole answer.

        Raises:
            ValueError: `limit` is not a positive int, or `skip` is negative.
            TypeError: `start_key` or `end_key` is not a str.
        """
        return database_names(self._all_dbs, limit=limit, skip=skip, start_key=start_key, end_key=end_key,
                              descending=descending)

    def iter_databases(
        self, *, page_size: int = 1000, start_key: str | None = None, end_key: str | None = None
    ) -> Iterator[str]:
        """Every database name, sorted, fetched `page_size` at a time (for accounts with
        very many databases).

        Args:
            page_size: Names per request.
            start_key: The first name.
            end_key: The last name (included).

        Returns:
            An iterator of names; each page is requested when the previous one is used up.

        Raises:
            ValueError: `page_size` is not a positive int.
        """
        return every_database_name(self._all_dbs, page_size=page_size, start_key=start_key, end_key=end_key)

    def _all_dbs(self, params: dict[str, Any]) -> Any:
        return self._http.request("GET", "/_all_dbs", params=params or None)

    # -- database events ---------------------------------------------------------------
    def subscribe_db_updates(
        self,
        transport: str | Transport = "longpoll",
        *,
        since: Any = "now",
        checkpoint: CheckpointStore | None = None,
        checkpoint_every: int = 1,
        manual_ack: bool = False,
        reconnect: ReconnectPolicy | None = None,
        **options: Unpack[SubscriptionOptions],
    ) -> Subscription:
        """Follow the server's `_db_updates` feed: which databases are created, written to
        or deleted. It is a [Subscription][cloudsync.Subscription] like a database's, with
        the same reconnects, resume, dedupe, checkpoints and `close()`; it delivers
        [DbUpdate][cloudsync.DbUpdate] items. Reading it takes a server admin.

        Args:
            transport: `"longpoll"`, `"continuous"` or `"sse"` (no server serves
                `_db_updates` over WebSocket), or a [Transport][cloudsync.Transport].
            since: `"now"` (resolved once, when this is called), `None`/`0` for every
                event the server keeps, or a seq; a checkpoint's seq wins.
            checkpoint: A [CheckpointStore][cloudsync.CheckpointStore] that keeps the
                acknowledged position.
            checkpoint_every: Save every n-th acknowledged position.
            manual_ack: The application acknowledges events itself.
            reconnect: How to wait between failed connections: a
                [ReconnectPolicy][cloudsync.ReconnectPolicy].
            **options: The subscription's
                [SubscriptionOptions][cloudsync.SubscriptionOptions] (`heartbeat`,
                `feed_timeout`, `queue_size`, ...); not its document filters.

        Returns:
            The subscription, not started yet: iterate it, or call its `start()` or
                `batches()`.

        Raises:
            ValueError: `transport` is WebSocket.
            TypeError: A document filter (`selector`, `doc_ids`, `filter`,
                `include_docs`, `query_params`) or an unknown option was given.
        """
        return subscribe_db_updates(self._http, transport, options, since=since, checkpoint=checkpoint,
                                    checkpoint_every=checkpoint_every, manual_ack=manual_ack, reconnect=reconnect)
