"""Change-feed transports and their registry.

`Subscription(db, transport="sse")` looks the name up here; pass an instance to
configure one (`LongPollTransport(selector_in="query")`), or register your own:

```python
register_transport("redis", lambda **options: RedisTransport(**options))
```
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import ChangesRequest, FeedConnection, Item, LastSeq, Transport
from .continuous import ContinuousTransport
from .longpoll import LongPollTransport
from .mock import MockTransport
from .sse import SSETransport
from .websocket import WebSocketTransport

__all__ = [
    "ChangesRequest",
    "ContinuousTransport",
    "FeedConnection",
    "Item",
    "LastSeq",
    "LongPollTransport",
    "MockTransport",
    "SSETransport",
    "Transport",
    "WebSocketTransport",
    "available_transports",
    "create_transport",
    "register_transport",
]

_REGISTRY: dict[str, Callable[..., Transport]] = {
    "longpoll": LongPollTransport,
    "continuous": ContinuousTransport,
    "sse": SSETransport,
    "eventsource": SSETransport,
    "websocket": WebSocketTransport,
}


def register_transport(name: str, factory: Callable[..., Transport], *, replace: bool = False) -> None:
    """Make `transport=name` build `factory(**transport_options)`.

    Args:
        name: The name subscriptions use.
        factory: Builds a [Transport][cloudsync.Transport] from the subscription's
            `transport_options`; a transport class will do.
        replace: Replace a transport registered under `name` already.

    Raises:
        ValueError: `name` is empty, or taken and `replace` is false.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("transport name must be a non-empty str")
    if name in _REGISTRY and not replace:
        raise ValueError(f"transport {name!r} is already registered (pass replace=True)")
    _REGISTRY[name] = factory


def available_transports() -> list[str]:
    """The registered names."""
    return sorted(_REGISTRY)


def create_transport(spec: str | Transport, **options: Any) -> Transport:
    """A transport for a subscription.

    Args:
        spec: A registered name, or a [Transport][cloudsync.Transport] instance.
        **options: Passed to the registered factory (only with a name).

    Returns:
        A new instance for a name, or `spec` itself when it is already a transport.

    Raises:
        ValueError: `spec` is not a registered name.
        TypeError: `options` given with an instance.
    """
    if isinstance(spec, Transport):
        if options:
            raise TypeError("transport options only apply when the transport is given by name")
        return spec
    try:
        factory = _REGISTRY[spec]
    except (KeyError, TypeError):
        raise ValueError(f"unknown transport {spec!r}; known: {', '.join(available_transports())}") from None
    return factory(**options)
