"""cloudsync's embedded CouchDB-3-compatible server (install the `server` extra).

Run it with `cloudsync serve` or `python -m cloudsync.server`; start it from tests
with [`cloudsync.server.testing.serve()`][cloudsync.server.testing.serve]. It speaks the CouchDB 3 HTTP API
subset the SDK uses, all five `_changes` feeds (including `eventsource` and `websocket`)
and Mango queries backed by SQLite indexes. See `docs/server.md`.
"""

from .app import ServerConfig, make_app, run
from .errors import CouchError
from .storage import Storage

__all__ = ["CouchError", "ServerConfig", "Storage", "make_app", "run"]
