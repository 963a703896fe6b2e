"""cloudsync: a Python SDK for CouchDB-style document databases and their live change feeds."""

import logging

from ._retry import RetryPolicy
from .auth import Auth, BasicAuth, BearerTokenAuth, CookieAuth
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
    ServerError,
    StreamError,
    TransportError,
    Unauthorized,
)
from .models import BulkResult, Change

__version__ = "0.1.0.dev0"

__all__ = [
    "Auth",
    "BadRequest",
    "BasicAuth",
    "BearerTokenAuth",
    "BulkResult",
    "Change",
    "Client",
    "CloudSyncError",
    "Conflict",
    "CookieAuth",
    "Database",
    "Forbidden",
    "HTTPError",
    "InvalidResponse",
    "NetworkError",
    "NotFound",
    "PreconditionFailed",
    "RateLimited",
    "RequestTimeout",
    "RetryPolicy",
    "ServerError",
    "StreamError",
    "TransportError",
    "Unauthorized",
]

logging.getLogger("cloudsync").addHandler(logging.NullHandler())
