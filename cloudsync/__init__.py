"""cloudsync: a Python SDK for CouchDB-style document databases and their live change feeds."""

import logging
import warnings

from ._retry import RetryPolicy
from .auth import Auth, BasicAuth, BearerTokenAuth, CookieAuth
from .backups import BackupError, BackupFileError, backup, restore
from .bulk import BulkWrite
from .changes import ChangesIterator
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
    PartitionError,
    PreconditionFailed,
    RateLimited,
    RequestTimeout,
    SelectorError,
    ServerError,
    StreamError,
    SubscriptionError,
    TLSError,
    TokenError,
    TransportError,
    Unauthorized,
)
from .find_page import FindPage
from .iam import IAMAuth
from .live_query import LiveQuery, LiveQueryEvent
from .models import BulkResult, Change, DbUpdate
from .partition import Partition
from .replication import Replication, ReplicationProgress, ReplicationState, replicate
from .subscription import ReconnectPolicy, Subscription, SubscriptionState, SubscriptionStats
from .subscription_options import SubscriptionOptions
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
from .writer import Writer, WriterError, WriterFull, WriterTimeout

__version__ = "0.1.0.dev0"

__all__ = [
    "Auth",
    "BackupError",
    "BackupFileError",
    "BadRequest",
    "BasicAuth",
    "BearerTokenAuth",
    "BulkResult",
    "BulkWrite",
    "Change",
    "ChangesIterator",
    "ChangesRequest",
    "CheckpointStore",
    "Client",
    "CloudSyncError",
    "Conflict",
    "ContinuousTransport",
    "CookieAuth",
    "Database",
    "DbUpdate",
    "FeedConnection",
    "FileCheckpoint",
    "FindPage",
    "Forbidden",
    "HTTPError",
    "IAMAuth",
    "InvalidResponse",
    "LastSeq",
    "LiveQuery",
    "LiveQueryEvent",
    "LocalDocCheckpoint",
    "LongPollTransport",
    "MemoryCheckpoint",
    "MockTransport",
    "NetworkError",
    "NotFound",
    "Partition",
    "PartitionError",
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
    "SubscriptionOptions",
    "SubscriptionState",
    "SubscriptionStats",
    "TLSError",
    "TokenError",
    "Transport",
    "TransportError",
    "Unauthorized",
    "WebSocketTransport",
    "Writer",
    "WriterError",
    "WriterFull",
    "WriterTimeout",
    "backup",
    "register_transport",
    "replicate",
    "restore",
]

logging.getLogger("cloudsync").addHandler(logging.NullHandler())


def __getattr__(name: str) -> type:
    if name == "State":  # the name before 0.2
        warnings.warn("cloudsync.State is deprecated; use cloudsync.SubscriptionState", DeprecationWarning, stacklevel=2)
        return SubscriptionState
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
