"""The server's configuration (everything `cloudsync serve` can be told) and the state
one running application shares between its handlers and feeds."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from . import limits
from .auth import Auth, LoginThrottle
from .changes import SendWatchdog
from .errors import CouchError
from .storage import Storage

__all__ = ["ServerConfig", "ServerState"]

T = TypeVar("T")


@dataclass
class ServerConfig:
    """Everything `cloudsync serve` can be told."""

    host: str = "127.0.0.1"
    port: int = 5984
    data_dir: str | os.PathLike[str] | None = None
    """Where database files live; `None` with `memory=True` uses a temporary directory."""
    memory: bool = False
    """Keep data only for the server's lifetime (temporary directory, no fsync)."""
    admins: dict[str, str] = field(default_factory=dict)
    """Admin users `{name: password}`; when empty, every request is allowed."""
    insecure_no_auth: bool = False
    """Allow running without users on a non-loopback address."""
    max_body: int = 64 * 1024 * 1024
    max_attachment_size: int = 64 * 1024 * 1024
    """Largest attachment uploaded on its own (`PUT /db/doc/name`); spooled to a file
    in the data directory, never held in memory."""
    max_json_depth: int = 64
    send_timeout: float = 30.0
    """Seconds a feed may wait for a client to accept data before it is disconnected."""
    ws_options_grace: float = 1.0
    """Seconds a websocket feed waits for the options message before using query parameters."""
    allow_hosts: list[str] = field(default_factory=list)
    """Extra `Host` names accepted without `--admin` (`"*"`: any)."""
    allow_origins: list[str] = field(default_factory=list)
    """Origins allowed for WebSocket/EventSource feeds and CORS (`"*"`: any)."""
    query_timeout: float = 10.0
    """Seconds of evaluation a query (`_find`, `_all_docs` keys, `_bulk_get`, a
    selector filter's batch) may use; 0 disables."""
    idle_timeout: float = 30.0
    """Seconds a connection may stay without a complete request (new or kept alive), and
    without any progress while a body is read; 0 disables."""
    max_session_body: int = 16 * 1024
    """Largest body of a public endpoint (`POST /_session`)."""
    max_login_failures: int = 10
    """Failed logins per client address per minute before answers are 429."""
    jwt_secret: str | None = None
    """The HS256 key of `Authorization: Bearer` JWTs (CouchDB's `[jwt_keys] hmac:_default`,
    not base64-encoded); `None`: no JWT authentication."""
    jwt_roles_claim: str = "_couchdb.roles"
    """The claim holding a JWT user's roles (CouchDB's `[jwt_auth] roles_claim_name`)."""


class ServerState:
    """Per-application state shared with the feeds."""

    def __init__(self, config: ServerConfig, storage: Storage, auth: Auth) -> None:
        self.config = config
        self.storage = storage
        self.auth = auth
        self.closing = False
        self.watchdog = SendWatchdog(config.send_timeout)
        self.ws_options_grace = config.ws_options_grace
        self.throttle = LoginThrottle(config.max_login_failures)
        # Query evaluation runs here, never on the event loop (each thread has its own
        # SQLite read connection per database, see Database.query_conn).
        self.query_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cloudsync-query")

    async def off_loop(self, fn: Callable[[], T]) -> T:
        """`fn()` on a query thread, within the query time budget."""
        seconds = self.config.query_timeout
        queued = time.monotonic()

        def run() -> T:
            # Time spent waiting for a free query thread counts: with every thread busy
            # with expensive queries, new ones time out instead of piling up.
            left = seconds - (time.monotonic() - queued) if seconds else None
            if left is not None and left <= 0:
                raise limits.QueryTimeout(seconds)
            with limits.budget(left, seconds):
                try:
                    return fn()
                except sqlite3.Error as exc:
                    if limits.expired():  # SQLite's progress handler stopped the statement
                        limits.check_budget()
                    if "interrupted" in str(exc) or isinstance(exc, sqlite3.ProgrammingError):
                        # Database.close() (the database was deleted) interrupted or closed it.
                        raise CouchError(404, "not_found", "Database does not exist.") from None
                    raise

        return await asyncio.get_running_loop().run_in_executor(self.query_executor, run)


