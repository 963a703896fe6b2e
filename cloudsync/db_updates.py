"""Following the server's `_db_updates` feed: which databases were created, written to
or deleted.

It is a [Subscription][cloudsync.Subscription] like a database's, over another feed:
the subscription is handed `DbUpdatesSource` where it is otherwise handed a
[Database][cloudsync.Database]: the feed's endpoint (`/_db_updates` instead of
`/db/_changes`) and what `since="now"` resolves to. Reconnects, resume, dedupe,
checkpoints and `close()` are the subscription's own; the rows become
[DbUpdate][cloudsync.DbUpdate] items in the wire parsers.

The long-poll, continuous and EventSource transports read it (CouchDB serves those
feeds, and `normal`); WebSocket does not: no server offers `_db_updates` over it.
Reading it takes a server admin.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._http.feeds import FeedEndpoint
from .transports import WebSocketTransport

if TYPE_CHECKING:
    from ._http import HTTP
    from .subscription import Subscription
    from .transports import Transport

__all__ = ["DbUpdatesSource", "subscribe_db_updates"]

PATH = "/_db_updates"
_NOT_OPTIONS = ("include_docs", "selector", "doc_ids", "filter", "query_params")
"""Subscription options of a database's changes, which `_db_updates` has no use for."""


class DbUpdatesSource:
    """The `_db_updates` feed as a subscription reaches it, in place of a database."""

    def __init__(self, http: HTTP) -> None:
        self._http = http

    def changes_endpoint(self) -> FeedEndpoint:
        """The feed's endpoint, `/_db_updates`, with a connection pool of its own."""
        return FeedEndpoint(self._http, "", feed=PATH.lstrip("/"))

    def info(self) -> dict[str, Any]:
        """`update_seq`: the feed's end now, which `since="now"` resolves to (the
        `last_seq` of a normal feed asked for `since=now`)."""
        return {"update_seq": self._http.request("GET", PATH, params={"since": "now"})["last_seq"]}

    def __repr__(self) -> str:
        return f"DbUpdatesSource({self._http.base_url!r})"


def subscribe_db_updates(http: HTTP, transport: str | Transport, options: Mapping[str, Any], **named: Any) -> Subscription:
    """A subscription to `_db_updates` (see `Client.subscribe_db_updates`): `named` are
    the options it spells out, `options` its `**options`."""
    from .subscription import Subscription
    from .subscription_options import check_subscription_options

    unused = sorted(set(options) & set(_NOT_OPTIONS))
    if unused:
        raise TypeError(f"subscribe_db_updates() takes no {', '.join(unused)}: _db_updates has no documents")
    check_subscription_options(options, "subscribe_db_updates() got unexpected keyword arguments")
    if transport == "websocket" or isinstance(transport, WebSocketTransport):
        raise ValueError("_db_updates is not served over WebSocket: use 'longpoll', 'continuous' or 'sse'")
    return Subscription(DbUpdatesSource(http), transport, **named, **options)
