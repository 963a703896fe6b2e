"""The one place cloudsync talks HTTP: a `requests.Session`, auth, retries, error translation.

Everything above this package sees cloudsync errors only; `requests` and `urllib3`
are imported here and nowhere else. Each concern has one function: `translate` (an
exception of theirs to ours), `answer_error` (a status to ours), `HTTP.auth_headers`
and `HTTP.renew` (credentials, renewed once after a 401). Feeds (long-lived, streamed,
abortable from another thread) open through `feeds.FeedEndpoint`, on the same functions.
"""

from __future__ import annotations

import http.cookiejar
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

import requests
import tenacity
import urllib3.exceptions

from .. import _json
from .._retry import RetryPolicy
from ..auth import Auth
from ..errors import (
    CloudSyncError,
    HTTPError,
    InvalidResponse,
    NetworkError,
    RequestTimeout,
    StreamError,
    TLSError,
    caused_by,
    error_for_status,
    is_tls_failure,
)

__all__ = ["HTTP", "FormAnswer", "answer_error", "translate"]

log = logging.getLogger("cloudsync")

DEFAULT_TIMEOUT = (10.0, 60.0)
"""`(connect, read)` seconds."""
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_REQUEST_ID_HEADERS = ("X-Couch-Request-ID", "X-Request-ID")


class _RejectCookies(http.cookiejar.DefaultCookiePolicy):
    """Auth objects own credentials; the session's jar must not add cookies of its own."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False


def redact(url: str) -> str:
    """`url` without user info."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def translate(exc: BaseException, what: str = "request") -> CloudSyncError:
    """Map a `requests`/`urllib3`/socket exception to the cloudsync error tree.

    The caller raises the result `from exc` so the cause stays inspectable.
    """
    if isinstance(exc, CloudSyncError):
        return exc
    message = f"{what} failed: {type(exc).__name__}: {exc}"
    if is_tls_failure(exc):
        return TLSError(message, sent=False)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return RequestTimeout(message, sent=False)
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError)):
        return StreamError(message)
    if isinstance(exc, (requests.exceptions.ReadTimeout, TimeoutError)) or caused_by(
        exc, urllib3.exceptions.ReadTimeoutError
    ):
        return RequestTimeout(message)
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return InvalidResponse(message)
    if isinstance(exc, requests.exceptions.ConnectionError):
        # urllib3 2 makes NewConnectionError a ConnectTimeoutError subclass: test it first.
        if caused_by(exc, urllib3.exceptions.NewConnectionError, ConnectionRefusedError):
            return NetworkError(message, sent=False)
        if caused_by(exc, urllib3.exceptions.ConnectTimeoutError):
            return RequestTimeout(message, sent=False)
        return NetworkError(message)
    return NetworkError(message)


def parse_json(response: requests.Response, what: str) -> Any:
    """The response body as JSON, or [InvalidResponse][cloudsync.InvalidResponse]."""
    try:
        content = response.content
    except Exception as exc:  # truncated or broken body while reading
        raise translate(exc, what) from exc
    try:
        return _json.loads(content)
    except _json.JSONDecodeError as exc:
        snippet = content[:80].decode("utf-8", "replace")
        raise InvalidResponse(
            f"{what}: expected JSON, got {len(content)} bytes starting {snippet!r}"
        ) from exc


def _retry_after_value(value: str | None) -> float | None:
    """A `Retry-After` header (seconds or an HTTP date) in seconds from now."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_from_parts(
    status: int, content: bytes | None, headers: Mapping[str, str], phrase: str | None, method: str, url: str
) -> HTTPError:
    """The typed error for a 4xx/5xx answer given as its parts (`headers` must look up
    case-insensitively): CouchDB's `error`/`reason` from a JSON body, the request id,
    `Retry-After`. The message reads `404 not_found: Database does not exist. (GET url)`
    whichever transport got the answer."""
    error = reason = None
    try:
        body = _json.loads(content or b"")
        if isinstance(body, dict):
            error, reason = body.get("error"), body.get("reason")
    except Exception:  # an error page that is not JSON: status is enough
        pass
    request_id = next((headers[h] for h in _REQUEST_ID_HEADERS if h in headers), None)
    if error is None and reason is None:  # HEAD, or a non-CouchDB error page
        reason = phrase or None
    return error_for_status(status)(
        status,
        error if isinstance(error, str) else None,
        reason if isinstance(reason, str) else None,
        method=method,
        url=redact(url),
        request_id=request_id,
        retry_after=_retry_after_value(headers.get("Retry-After")),
    )


def redirect_error(status: int, location: str | None, method: str, url: str) -> InvalidResponse:
    """A 3xx where an answer was expected: not followed (credentials must not go to
    another host), reported as a retryable [InvalidResponse][cloudsync.InvalidResponse]."""
    target = f" to {redact(location)}" if location else ""
    return InvalidResponse(f"{status} redirect{target}: not followed ({method} {redact(url)})")


def answer_error(
    status: int,
    phrase: str | None,
    headers: Mapping[str, str],
    content: Callable[[], bytes | None],
    method: str,
    url: str,
) -> CloudSyncError | None:
    """The error an answer's status stands for, or `None` for a success (2xx).

    The one status-to-error mapping, for plain requests, feeds and WebSocket handshakes
    alike: 4xx/5xx give their typed `HTTPError` (the body, read by `content()` only
    then, gives CouchDB's `error`/`reason`); a 3xx is a redirect not followed; a 1xx an
    interim answer. `headers` must look up case-insensitively.
    """
    if status >= 400:
        try:
            body = content()
        except Exception:  # a broken body: status and headers are enough
            body = b""
        return error_from_parts(status, body, headers, phrase, method, url)
    if 300 <= status < 400:
        return redirect_error(status, headers.get("Location"), method, url)
    if status < 200:  # http.client skips 100 only: a 102/103 ends up here
        return InvalidResponse(f"{status} {phrase}: an interim answer, not a response ({method} {redact(url)})")
    return None


class FormAnswer(NamedTuple):
    """What a form POST to another host (a token endpoint) answered, unjudged."""

    status: int
    reason: str
    content: bytes


class HTTP:
    """One `requests.Session` with auth, timeouts, retries and logging.

    Thread-safe for concurrent requests (requests' connection pool is).
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: Auth | None = None,
        timeout: Any = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        pool_maxsize: int = 10,
        verify: bool | str = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.verify = verify
        """TLS verification: True (the default CA bundle), False, or a CA bundle path."""
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self.session = requests.Session()
        self.session.cookies.set_policy(_RejectCookies())
        self.session.trust_env = False  # no netrc/proxy surprises; credentials come from auth only
        self.session.verify = verify
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=1, pool_maxsize=pool_maxsize, max_retries=0
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"User-Agent": _user_agent(), "Accept": "application/json"})
        self._token_session: requests.Session | None = None

    def close(self) -> None:
        self.session.close()
        if self._token_session is not None:
            self._token_session.close()

    def __repr__(self) -> str:
        return f"HTTP({self.base_url!r}, auth={self.auth!r})"

    # -- building blocks ------------------------------------------------------------
    def _prepare(
        self, json: Any, data: Any, headers: Mapping[str, str] | None
    ) -> tuple[bytes | IO[bytes] | None, dict[str, str]]:
        merged: dict[str, str] = {}
        body = data
        if json is not None:
            body = _json.dumps(json)
            # pouchdb-server silently stores {} for a JSON body without this header.
            merged["Content-Type"] = "application/json"
        if headers:
            merged.update(headers)
        return body, merged

    def _send_once(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        body: bytes | IO[bytes] | None,
        headers: dict[str, str],
        timeout: Any,
        use_auth: bool = True,
        stream: bool = False,
    ) -> requests.Response:
        """One exchange (plus one resend after a 401 when auth renews). Raises cloudsync errors."""
        url = self.base_url + path
        # A file body is read by sending it: a resend after a 401 must start it over, and
        # one that cannot be rewound is not resent (the 401 is raised instead).
        rewind = None if body is None or isinstance(body, bytes) else _rewinder(body)
        renewed = body is not None and not isinstance(body, bytes) and rewind is None
        while True:
            send_headers = dict(headers)
            if use_auth:
                send_headers.update(self.auth_headers())
            started = time.perf_counter()
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    data=body,
                    headers=send_headers,
                    timeout=timeout if timeout is not None else self.timeout,
                    allow_redirects=False,
                    stream=stream,
                )
            except Exception as exc:
                log.debug("%s %s -> %s", method, path, type(exc).__name__)
                raise translate(exc, f"{method} {path}") from exc
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "%s %s -> %d (%.1f ms)",
                    method,
                    path,
                    response.status_code,
                    (time.perf_counter() - started) * 1000,
                )
            if self.resend_after(response, method, url, may_renew=use_auth and not renewed):
                renewed = True
                if rewind is not None:
                    rewind()
                continue
            return response

    def auth_headers(self) -> dict[str, str]:
        """The credentials' headers for the next request (none without auth)."""
        return dict(self.auth.headers(self)) if self.auth is not None else {}

    def renew(self) -> bool:
        """After a 401: renew the credentials (log in again, fetch a token); whether the
        request is worth sending once more."""
        return self.auth is not None and bool(self.auth.renew(self))

    def resend_after(self, response: requests.Response, method: str, url: str, *, may_renew: bool) -> bool:
        """Judge a response: `True` when a 401 renewed the credentials and the request
        should be sent once more; raises the typed error for any other answer that is not
        a success (closing the response); `False` for a success."""
        if response.status_code == 401 and may_renew and self.auth is not None:
            response.close()
            if self.renew():
                return True
        error = answer_error(
            response.status_code, response.reason, response.headers, lambda: response.content, method, url
        )
        if error is not None:
            response.close()
            raise error
        return False

    # -- public to the package ---------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: bytes | IO[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        timeout: Any = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """Send with retries (`retry`, else the client's policy); return the parsed
        JSON body (`None` for HEAD)."""
        body, merged = self._prepare(json, data, headers)
        if idempotent is None:
            idempotent = method in _IDEMPOTENT
        policy = retry if retry is not None else self.retry
        what = f"{method} {path}"

        def attempt() -> Any:
            response = self._send_once(
                method, path, params=params, body=body, headers=merged, timeout=timeout
            )
            if method == "HEAD":
                return response.headers
            return parse_json(response, what)

        # The first try runs outside tenacity: most calls succeed, and they should not
        # pay for the retry machinery.
        started = time.monotonic()
        try:
            return attempt()
        except CloudSyncError as exc:
            if policy.attempts == 1 or not policy.should_retry(exc, idempotent):
                raise
            first = exc

        def failure(state: tenacity.RetryCallState) -> BaseException:
            assert state.outcome is not None and state.outcome.failed
            return state.outcome.exception()  # type: ignore[return-value]

        def before_sleep(state: tenacity.RetryCallState) -> None:
            log.debug("%s: retry %d in %.2fs after %s", what, state.attempt_number + 1,
                      state.upcoming_sleep, failure(state))

        delay = policy.delay(first, 0)
        if time.monotonic() - started + delay >= policy.max_time:
            raise first
        log.debug("%s: retry 1 in %.2fs after %s", what, delay, first)
        policy.sleep(delay)
        retrying = tenacity.Retrying(
            # attempt_number counts the tries inside tenacity; the first try came before.
            stop=tenacity.stop_after_attempt(policy.attempts - 1)
            | tenacity.stop_before_delay(policy.max_time - (time.monotonic() - started)),
            wait=lambda state: policy.delay(failure(state), state.attempt_number),
            retry=tenacity.retry_if_exception(lambda e: policy.should_retry(e, idempotent)),
            sleep=policy.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(attempt)

    def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        chunk_size: int = 64 * 1024,
    ) -> Iterator[bytes]:
        """Send once (no retries) and yield the raw response body as it arrives, for
        bodies too large to hold (attachments). The request is sent at the first `next`."""
        what = f"{method} {path}"
        response = self._send_once(
            method, path, params=params, body=None, headers=dict(headers or {}), timeout=None, stream=True
        )
        try:
            yield from response.iter_content(chunk_size)
        except Exception as exc:
            raise translate(exc, what) from exc
        finally:
            response.close()

    def login_request(self, method: str, path: str, *, json: Any) -> requests.Response:
        """A request without auth headers or retries (used by auth objects to log in)."""
        body, merged = self._prepare(json, None, None)
        return self._send_once(
            method, path, params=None, body=body, headers=merged, timeout=None, use_auth=False
        )

    def post_form(self, url: str, form: Mapping[str, str], *, timeout: tuple[float, float]) -> FormAnswer:
        """POST `form` (URL-encoded) to `url` on another host, such as IBM IAM's token
        endpoint: no client credentials, no retries, no redirects, nothing logged but the
        URL and the status. Its own session, so a token exchange never evicts the
        database's kept-alive connections. Network failures raise cloudsync errors; the
        status is the caller's to judge.

        Args:
            url: The absolute URL.
            form: The fields (they may hold secrets: never logged).
            timeout: `(connect, read)` seconds.

        Returns:
            The status, its phrase and the body.
        """
        if self._token_session is None:
            session = requests.Session()
            session.cookies.set_policy(_RejectCookies())
            session.trust_env = False
            session.verify = self.verify
            session.headers.update({"User-Agent": _user_agent()})
            self._token_session = session
        what = f"POST {redact(url)}"
        try:
            response = self._token_session.post(
                url, data=dict(form), timeout=timeout, allow_redirects=False,
                headers={"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"},
            )
            content = response.content
        except Exception as exc:
            log.debug("%s -> %s", what, type(exc).__name__)
            raise translate(exc, what) from exc
        log.debug("%s -> %d", what, response.status_code)
        return FormAnswer(response.status_code, response.reason or "", content)


def _rewinder(body: IO[bytes]) -> Callable[[], None] | None:
    """How to send a file body again from where it starts now, or `None` when it cannot
    seek back (a pipe, a socket, a generator's stream)."""
    try:
        if not body.seekable():
            return None
        start = body.tell()
    except (AttributeError, OSError, ValueError):
        return None

    def rewind() -> None:
        body.seek(start)

    return rewind


def _user_agent() -> str:
    from .. import __version__

    return f"cloudsync/{__version__} python-requests/{requests.__version__}"
