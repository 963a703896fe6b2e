"""Authentication: basic, CouchDB cookie sessions, and bearer tokens from a provider.

An auth object adds headers to each request and may renew its credentials once after
a 401. Secrets never appear in `repr`.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Union

from .errors import InvalidResponse

if TYPE_CHECKING:
    from ._http import HTTP

__all__ = ["Auth", "BasicAuth", "BearerTokenAuth", "CookieAuth"]


class Auth:
    """Base class. Subclass it for other schemes."""

    def headers(self, http: HTTP) -> dict[str, str]:
        """Headers to add to the next request (may fetch credentials first).

        Args:
            http: The client's HTTP layer, for a login request of its own.

        Returns:
            The headers, such as `{"Authorization": ...}`.
        """
        return {}

    def renew(self, http: HTTP) -> bool:
        """Called after a 401: get new credentials, if this scheme can.

        Args:
            http: The client's HTTP layer, for a login request of its own.

        Returns:
            Whether new credentials make a resend worthwhile.
        """
        return False


class BasicAuth(Auth):
    """HTTP basic authentication.

    Args:
        username: The user's name.
        password: The user's password.
    """

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self._header = {"Authorization": f"Basic {token}"}

    def headers(self, http: HTTP) -> dict[str, str]:
        return self._header

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r})"


class CookieAuth(Auth):
    """A CouchDB cookie session (`POST /_session`), renewed before it expires and on a 401.

    Args:
        username: The user's name.
        password: The user's password.
        renew_after: Seconds after which a session is renewed before the next request.
            CouchDB's sessions last 600 seconds by default: keep this comfortably below
            the server's `[chttpd_auth] timeout`.
        clock: Returns the time in seconds; injectable for tests.
    """

    def __init__(
        self,
        username: str,
        password: str,
        *,
        renew_after: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.username = username
        self._password = password
        self.renew_after = renew_after
        self._clock = clock
        self._cookie: str | None = None
        self._obtained_at = 0.0
        self._lock = threading.Lock()

    def headers(self, http: HTTP) -> dict[str, str]:
        with self._lock:
            if self._cookie is None or self._clock() - self._obtained_at >= self.renew_after:
                self._login(http)
            return {"Cookie": f"AuthSession={self._cookie}"}

    def renew(self, http: HTTP) -> bool:
        with self._lock:
            self._login(http)
        return True

    def _login(self, http: HTTP) -> None:
        response = http.login_request(
            "POST", "/_session", json={"name": self.username, "password": self._password}
        )
        cookie = response.cookies.get("AuthSession")
        if not cookie:
            raise InvalidResponse("POST /_session answered without an AuthSession cookie")
        self._cookie = cookie
        self._obtained_at = self._clock()

    def __repr__(self) -> str:
        return f"CookieAuth(username={self.username!r})"


TokenResult = Union[str, "tuple[str, float]"]


class BearerTokenAuth(Auth):
    """`Authorization: Bearer` with tokens from a provider (IBM IAM and the like).

    The token is cached until shortly before it expires, and fetched anew after a 401.

    Args:
        provider: Called without arguments for a token; returns the token, or
            `(token, expires_in_seconds)`.
        refresh_margin: Seconds before its expiry at which a token is fetched anew.
        clock: Returns the time in seconds; injectable for tests.
    """

    def __init__(
        self,
        provider: Callable[[], TokenResult],
        *,
        refresh_margin: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._provider = provider
        self.refresh_margin = refresh_margin
        self._clock = clock
        self._token: str | None = None
        self._expires_at = float("inf")
        self._lock = threading.Lock()

    def headers(self, http: HTTP) -> dict[str, str]:
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at - self.refresh_margin:
                self._fetch()
            return {"Authorization": f"Bearer {self._token}"}

    def renew(self, http: HTTP) -> bool:
        with self._lock:
            self._fetch()
        return True

    def _fetch(self) -> None:
        result = self._provider()
        if isinstance(result, tuple):
            token, expires_in = result
            self._expires_at = self._clock() + float(expires_in)
        else:
            token, self._expires_at = result, float("inf")
        if not isinstance(token, str) or not token:
            raise TypeError("BearerTokenAuth provider must return a non-empty str token")
        self._token = token

    def __repr__(self) -> str:
        return "BearerTokenAuth(provider=...)"
