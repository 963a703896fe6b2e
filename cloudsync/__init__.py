"""cloudsync: a Python SDK for CouchDB-style document databases and their live change feeds."""

import logging
import warnings

from ._retry import RetryPolicy
from .auth import Auth, BasicAuth, BearerTokenAuth, CookieAuth
from .checkpoint import CheckpointStore, FileCheckpoint, LocalDocCheckpoint, MemoryCheckpoint
from .client import Client
from .database import Database
from .errors import (
    BadRequest,
    CloudSyncError,
    Conflict,
    Forbidden,
    HTTPError,
    InvalidResponse,
    NetworkError,
    NotFound,
    PreconditionFailed,
    RateLimited,
    RequestTimeout,
    SelectorError,
    ServerError,
    StreamError,
    SubscriptionError,
    TLSError,
    TransportError,
    Unauthorized,
)
from .models import BulkResult, Change
from .replication import Replication, ReplicationProgress, ReplicationState, replicate
from .subscription import ReconnectPolicy, Subscription, SubscriptionState, SubscriptionStats
from .transports import (
    ChangesRequest,
    ContinuousTransport,
    FeedConnection,
    LastSeq,
    LongPollTransport,
    MockTransport,
    SSETransport,
    Transport,
    WebSocketTransport,
    register_transport,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "Auth",
    "BadRequest",
    "BasicAuth",
    "BearerTokenAuth",
    "BulkResult",
    "Change",
    "ChangesRequest",
    "CheckpointStore",
    "Client",
    "CloudSyncError",
    "Conflict",
    "ContinuousTransport",
    "CookieAuth",
    "Database",
    "FeedConnection",
    "FileCheckpoint",
    "Forbidden",
    "HTTPError",
    "InvalidResponse",
    "LastSeq",
    "LocalDocCheckpoint",
    "LongPollTransport",
    "MemoryCheckpoint",
    "MockTransport",
    "NetworkError",
    "NotFound",
    "PreconditionFailed",
    "RateLimited",
    "ReconnectPolicy",
    "Replication",
    "ReplicationProgress",
    "ReplicationState",
    "RequestTimeout",
    "RetryPolicy",
    "SSETransport",
    "SelectorError",
    "ServerError",
    "StreamError",
    "Subscription",
    "SubscriptionError",
    "SubscriptionState",
    "SubscriptionStats",
    "TLSError",
    "Transport",
    "TransportError",
    "Unauthorized",
    "WebSocketTransport",
    "register_transport",
    "replicate",
]

logging.getLogger("cloudsync").addHandler(logging.NullHandler())


def __getattr__(name: str) -> type:
    if name == "State":  # the name before 0.2
        warnings.warn("cloudsync.State is deprecated; use cloudsync.SubscriptionState", DeprecationWarning, stacklevel=2)
        return SubscriptionState
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
