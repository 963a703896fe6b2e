"""IBM Cloud IAM: an API key exchanged for short-lived bearer tokens, cached and refreshed.

The exchange follows IBM's token managers (ibm-cloud-sdk-core): a form POST of
`grant_type=urn:ibm:params:oauth:grant-type:apikey&apikey=...` to the token endpoint,
whose JSON answer carries `access_token` and `expires_in`; the token is refreshed once
80% of its lifetime has passed, and at once after a 401.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from . import _json
from .auth import Auth
from .errors import CloudSyncError, TokenError

if TYPE_CHECKING:
    from ._http import HTTP, FormAnswer

__all__ = ["DEFAULT_TOKEN_URL", "IAMAuth"]

log = logging.getLogger("cloudsync")

DEFAULT_TOKEN_URL = "https://iam.cloud.ibm.com/identity/token"
GRANT_TYPE = "urn:ibm:params:oauth:grant-type:apikey"
RETRY_FAILED_REFRESH = 0.1
"""After a failed refresh of a token still valid, the next try waits this fraction of
the time the token has left (the token is used meanwhile)."""


class _Token(NamedTuple):
    value: str
    refresh_at: float
    expires_at: float


class IAMAuth(Auth):
    """IBM Cloud IAM: the API key is exchanged for a bearer token at the IAM token
    endpoint; the token is cached, refreshed once `refresh_fraction` of its lifetime has
    passed, and fetched anew at once after a 401.

    One `IAMAuth` may be shared by clients, threads and subscriptions (every transport,
    WebSocket included): when many threads need a token at once, one exchanges the key
    and the others wait for its token; while a token is due for refresh but still valid,
    one thread refreshes it and the others go on using it. Neither the key nor a token
    appears in `repr`, log records or error messages.

    Args:
        api_key: The IAM API key.
        token_url: The token endpoint.
        refresh_fraction: The part of a token's lifetime (`expires_in`) after which it
            is refreshed before the next request (IBM's SDKs: 0.8).
        timeout: `(connect, read)` seconds for the token request.
        clock: Returns the time in seconds; injectable for tests.

    Raises:
        ValueError: `api_key` is empty, or `refresh_fraction` is not in `(0, 1]`.

    A failed exchange raises [TokenError][cloudsync.TokenError] from the request that
    needed the token: retryable when the endpoint was unreachable or answered 429/5xx or
    something unusable, not retryable when it refused the key.
    """

    def __init__(
        self,
        api_key: str,
        *,
        token_url: str = DEFAULT_TOKEN_URL,
        refresh_fraction: float = 0.8,
        timeout: tuple[float, float] = (10.0, 30.0),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(api_key, str) or not api_key:
            raise ValueError("IAMAuth needs a non-empty API key")
        if not 0 < refresh_fraction <= 1:
            raise ValueError("refresh_fraction must be in (0, 1]")
        self._api_key = api_key
        self.token_url = token_url
        self.refresh_fraction = refresh_fraction
        self.timeout = timeout
        self._clock = clock
        self._token: _Token | None = None
        self._lock = threading.Lock()
        self._sent = threading.local()  # the token this thread last sent, for renew()

    def headers(self, http: HTTP) -> dict[str, str]:
        value = self._valid_token(http)
        self._sent.value = value
        return {"Authorization": f"Bearer {value}"}

    def renew(self, http: HTTP) -> bool:
        sent = getattr(self._sent, "value", None)
        with self._lock:
            current = self._token
            # Many threads may see the same token refused: the first exchanges the key,
            # the others resend with its token.
            if current is None or current.value == sent:
                self._exchange(http)
        return True

    def _valid_token(self, http: HTTP) -> str:
        token = self._token
        now = self._clock()
        if token is not None and now < token.refresh_at:
            return token.value
        if token is not None and now < token.expires_at:
            # Due for refresh but still valid: one thread refreshes, the rest go on.
            if not self._lock.acquire(blocking=False):
                return token.value
        else:
            self._lock.acquire()
        try:
            token = self._token
            now = self._clock()
            if token is not None and now < token.refresh_at:
                return token.value  # another thread exchanged while this one waited
            if token is not None and now < token.expires_at:
                return self._refresh_early(http, token, now)
            return self._exchange(http).value
        finally:
            self._lock.release()

    def _refresh_early(self, http: HTTP, token: _Token, now: float) -> str:
        """Refresh a token still valid; if that fails, keep using it and try again later."""
        try:
            return self._exchange(http).value
        except TokenError as exc:
            log.warning("IAM token refresh failed (the current token is valid for %.0f s more): %s",
                        token.expires_at - now, exc)
            later = now + (token.expires_at - now) * RETRY_FAILED_REFRESH
            self._token = token._replace(refresh_at=later)
            return token.value

    def _exchange(self, http: HTTP) -> _Token:
        """Exchange the key for a token (with the lock held)."""
        started = self._clock()
        try:
            answer = http.post_form(self.token_url, {"grant_type": GRANT_TYPE, "apikey": self._api_key},
                                    timeout=self.timeout)
            failure = None
        except CloudSyncError as exc:
            failure = TokenError(self._scrub(f"IAM token request failed: {exc}"), retryable=exc.retryable)
        # Raised outside the `except`, unchained: a refused connection to the token
        # endpoint must not read as the database's (whose port the subscription probes).
        if failure is not None:
            raise failure
        token = self._read(answer, started)
        self._token = token
        log.debug("IAM token obtained from %s, valid for %.0f s", self.token_url, token.expires_at - started)
        return token

    def _read(self, answer: FormAnswer, started: float) -> _Token:
        """The token of a token endpoint's answer, or a `TokenError`."""
        status = answer.status
        body: Any = None
        with contextlib.suppress(ValueError):  # not JSON (or not UTF-8): judged below
            body = _json.loads(answer.content)
        if status != 200:
            detail = ""
            if isinstance(body, dict):
                code, message = body.get("errorCode"), body.get("errorMessage", body.get("error_description"))
                detail = ": " + " ".join(str(p) for p in (code, message) if p)[:300]
            raise TokenError(
                self._scrub(f"IAM token endpoint answered {status} {answer.reason}{detail} ({self.token_url})"),
                status=status, retryable=status == 429 or status >= 500,
            )
        if not isinstance(body, dict):
            what = "a body that is not JSON" if body is None else "JSON that is not an object"
            raise TokenError(f"IAM token endpoint answered 200 with {what} ({self.token_url})", status=status)
        value, lifetime = body.get("access_token"), body.get("expires_in")
        if not isinstance(value, str) or not value:
            raise TokenError(f"IAM token endpoint answered without an access_token ({self.token_url})", status=status)
        if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)) or lifetime <= 0:
            raise TokenError(f"IAM token endpoint answered without a positive expires_in ({self.token_url})",
                             status=status)
        # Timed from before the request: the token may be older than its answer.
        return _Token(value, started + lifetime * self.refresh_fraction, started + lifetime)

    def _scrub(self, text: str) -> str:
        """`text` without the key, should an endpoint echo it."""
        return text.replace(self._api_key, "***")

    def __repr__(self) -> str:
        return f"IAMAuth(token_url={self.token_url!r})"
