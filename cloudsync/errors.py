"""The cloudsync error tree.

Every error cloudsync raises derives from [CloudSyncError][cloudsync.CloudSyncError]. Exceptions from
`requests`, `urllib3` and `websocket-client` are translated into this tree in one
place (`cloudsync._http` and the transports) and never leak.

Each class says, in its `retryable` attribute, whether trying the same request again
may succeed. Whether a retry is *safe* also depends on the request: a non-idempotent
`POST` is only retried when it failed before it was sent.

```text
CloudSyncError
├── TransportError          (retryable) the exchange failed below HTTP
│   ├── NetworkError        connection refused / reset / DNS
│   │   ├── StreamError     a change feed broke mid-stream
│   │   └── TLSError        (not retryable) certificate verification or
│   │                       TLS handshake failed
│   ├── RequestTimeout      connect or read timeout, stalled feed
│   └── TokenError          a token endpoint (IBM IAM) failed or refused the
│                           key (then not retryable); nothing was sent
├── InvalidResponse         (retryable) truncated body, malformed JSON, a
│                           redirect, or a status/Content-Type that is not
│                           the feed asked for
├── HTTPError               the server answered with a 4xx/5xx status
│   ├── BadRequest          400 (also 413/415 bodies the server refused)
│   ├── Unauthorized        401
│   ├── Forbidden           403
│   ├── NotFound            404
│   ├── Conflict            409 document update conflict
│   ├── PreconditionFailed  412 e.g. database already exists
│   ├── RateLimited         429 (retryable), retry_after in seconds
│   └── ServerError         5xx (retryable), retry_after in seconds (503)
├── SubscriptionError       a subscription stopped on a non-cloudsync error
├── SelectorError           (also a ValueError) a Mango selector cloudsync
│                           cannot evaluate
└── PartitionError          (also a ValueError) a bad partition name, or an
                            id without partition for a partitioned database
```

Every [HTTPError][cloudsync.HTTPError] has `retry_after`: the `Retry-After` header in seconds, or
`None`. A WebSocket feed closed by the server with a policy close code (1008, 1003,
4400...) raises the [HTTPError][cloudsync.HTTPError] its HTTP status would (`close_code` is set).
"""

from __future__ import annotations

import ssl
from typing import Any

__all__ = [
    "BadRequest",
    "CloudSyncError",
    "Conflict",
    "Forbidden",
    "HTTPError",
    "InvalidResponse",
    "NetworkError",
    "NotFound",
    "PartitionError",
    "PreconditionFailed",
    "RateLimited",
    "RequestTimeout",
    "SelectorError",
    "ServerError",
    "StreamError",
    "SubscriptionError",
    "TLSError",
    "TokenError",
    "TransportError",
    "Unauthorized",
    "caused_by",
    "error_for_status",
    "is_tls_failure",
]


class CloudSyncError(Exception):
    """Base class of every error cloudsync raises."""

    retryable: bool = False
    """Whether sending the same request again may succeed."""


class TransportError(CloudSyncError):
    """The exchange failed below HTTP: no (complete) answer arrived.

    Args:
        message: What failed.
        sent: `False` when the request certainly never reached the server (connection
            refused, connect timeout): then even a non-idempotent request may be retried.
            Kept as the `sent` attribute.
    """

    retryable = True

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class NetworkError(TransportError):
    """A connection could not be made or was broken (refused, reset, DNS failure)."""


class StreamError(NetworkError):
    """A change feed broke mid-stream (truncated chunk, abrupt close, bad frame)."""


class TLSError(NetworkError):
    """TLS failed: the server's certificate did not verify (unknown CA, wrong host name,
    expired) or the handshake failed. Not retryable: the same certificate fails again.
    Pass `verify=` to [Client][cloudsync.Client] (a CA bundle path, or `False`)."""

    retryable = False


class RequestTimeout(TransportError):
    """Connecting took too long, the server went silent, or a feed stalled."""


class TokenError(TransportError):
    """An auth object could not get a token from its token endpoint (IBM IAM): the
    endpoint was unreachable, failed, refused the key, or answered something unusable.
    The request that needed the token was not sent (`sent` is `False`). The message
    never holds the key.

    Args:
        message: What failed.
        status: The token endpoint's HTTP status, or `None` when it gave none. Kept as
            the `status` attribute.
        retryable: Whether a new exchange may succeed: `False` when the endpoint refused
            the key (a 4xx other than 429), which fails the same way every time.
    """

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = True) -> None:
        super().__init__(message, sent=False)
        self.status = status
        self.retryable = retryable


class InvalidResponse(CloudSyncError):
    """The server answered with a body cloudsync cannot use (truncated, not JSON, wrong shape)."""

    retryable = True


class SubscriptionError(CloudSyncError):
    """A subscription stopped on an exception that is not a cloudsync error (a bug in a
    transport, a checkpoint store or a callback). The original is its `__cause__`."""


class SelectorError(CloudSyncError, ValueError):
    """A Mango selector (or sort) is invalid: an unknown operator, an argument of the
    wrong type, a regular expression that does not compile. Raised before any document
    is matched."""


class PartitionError(CloudSyncError, ValueError):
    """A partition name that is not a non-empty string without a leading `_` or a `:`,
    or a document id for a partitioned database that is not `partition:docid`. Raised
    before anything is sent; the server's own refusal of such an id is a
    [BadRequest][cloudsync.BadRequest] with `error` `"illegal_docid"`."""


class HTTPError(CloudSyncError):
    """The server answered with an error status.

    Each argument is kept as the attribute of the same name; the message puts them
    together (`404 not_found: missing (GET http://host/db/doc) [request id ...]`).

    Args:
        status: The HTTP status.
        error: CouchDB's `error` field (`"not_found"`), if any.
        reason: CouchDB's `reason` field, if any.
        method: The request's method.
        url: The request's URL, without credentials.
        request_id: The request id header the server sent, if any.
        retry_after: The server's `Retry-After` hint in seconds (429, 503), or `None`.
    """

    def __init__(
        self,
        status: int,
        error: str | None = None,
        reason: str | None = None,
        *,
        method: str | None = None,
        url: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        self.error = error
        self.reason = reason
        self.method = method
        self.url = url
        self.request_id = request_id
        super().__init__(self._message())

    def _message(self) -> str:
        parts = [str(self.status)]
        if self.error:
            parts.append(self.error)
        text = " ".join(parts)
        if self.reason:
            text += f": {self.reason}"
        if self.method and self.url:
            text += f" ({self.method} {self.url})"
        if self.request_id:
            text += f" [request id {self.request_id}]"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the keyword-only fields when pickled (e.g. across processes).
        return (_rebuild_http_error, (type(self), self.__dict__.copy()))


def _rebuild_http_error(cls: type[HTTPError], state: dict[str, Any]) -> HTTPError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, error._message())
    return error


class BadRequest(HTTPError):
    """400: the request is malformed (bad JSON, bad selector, bad parameter)."""


class Unauthorized(HTTPError):
    """401: no or wrong credentials."""


class Forbidden(HTTPError):
    """403: the credentials do not allow this."""


class NotFound(HTTPError):
    """404: no such database, document, index or view."""


class Conflict(HTTPError):
    """409: the document's revision is not the current one. Never retried."""


class PreconditionFailed(HTTPError):
    """412: a precondition failed, e.g. creating a database that exists."""


class RateLimited(HTTPError):
    """429: too many requests. `retry_after` is the server's hint in seconds, if any."""

    retryable = True


class ServerError(HTTPError):
    """5xx: the server failed. Retried for idempotent requests; a 503's `Retry-After`
    (`retry_after`, seconds) is honoured."""

    retryable = True


_BY_STATUS: dict[int, type[HTTPError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    413: BadRequest,
    415: BadRequest,
    429: RateLimited,
}


def error_for_status(status: int) -> type[HTTPError]:
    """The [HTTPError][cloudsync.HTTPError] subclass cloudsync raises for an HTTP status.

    Args:
        status: An HTTP error status (4xx, 5xx).

    Returns:
        The class, such as [NotFound][cloudsync.NotFound] for 404; `HTTPError` itself for
            a status without a class of its own.
    """
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, HTTPError)


def caused_by(exc: BaseException, *types: type[BaseException]) -> bool:
    """Whether `exc` or anything it was caused by (its chain, args, `reason`) is one of `types`.

    The reader asks this of an error (was the connection refused?) without knowing which
    library raised its cause.
    """
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, types):
            return True
        linked = (*getattr(current, "args", ()), current.__cause__, current.__context__, getattr(current, "reason", None))
        # ``reason`` is an exception on urllib3's errors but a str on ours (HTTPError).
        stack.extend(link for link in linked if isinstance(link, BaseException))
    return False


def is_tls_failure(exc: BaseException) -> bool:
    """Whether `exc` is (or was caused by) a certificate that failed verification: the
    same certificate fails again, so it is not retried. Other TLS errors (a connection
    dropped mid-handshake while a server restarts) are network errors, retried."""
    return caused_by(exc, ssl.SSLCertVerificationError, ssl.CertificateError)
