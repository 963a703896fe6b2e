"""Admin users, basic auth and `AuthSession` cookies (CouchDB's `/_session`); JWT bearer
tokens are checked by `jwt.py`."""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import math
import os
import secrets
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any

from .errors import CouchError
from .jwt import JWTVerifier

__all__ = ["Auth", "LoginThrottle", "cookie_options", "parse_admin"]

COOKIE = "AuthSession"
SESSION_TIMEOUT = 600  # seconds, CouchDB's default; renewed on use
REFRESH_AFTER = SESSION_TIMEOUT / 10
"""A cookie older than this is re-issued on use (CouchDB: once 10% of the timeout has passed)."""
COOKIE_SKEW = 60
"""Clock skew tolerated on a cookie's time stamp (a cookie from the future is forged)."""


def parse_admin(value: str) -> tuple[str, str]:
    """`"user:password"` -> `("user", "password")`; `ValueError` if malformed."""
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError("admin credentials must look like USER:PASSWORD")
    return user, password


class Auth:
    """Checks credentials. With no users configured (no admin, no JWT secret) every
    request is an admin's."""

    def __init__(self, admins: dict[str, str], secret_dir: Path | None = None,
                 jwt: JWTVerifier | None = None) -> None:
        self._admins = {u: hashlib.sha256(p.encode()).digest() for u, p in admins.items()}
        self._secret = self._load_secret(secret_dir)
        self.jwt = jwt
        """Checks `Authorization: Bearer` tokens, when the server has a JWT secret."""

    @property
    def enabled(self) -> bool:
        return bool(self._admins) or self.jwt is not None

    @staticmethod
    def _load_secret(secret_dir: Path | None) -> bytes:
        # Persisted next to the data so sessions survive a restart, as in CouchDB.
        if secret_dir is None:
            return secrets.token_bytes(32)
        # Anyone who reads it can mint an admin session: only the owner may (0600).
        path = secret_dir / ".cloudsync-secret"
        try:
            secret = bytes.fromhex(path.read_text())
            if len(secret) >= 32:
                if path.stat().st_mode & 0o077:
                    os.chmod(path, 0o600)
                return secret
        except (OSError, ValueError):
            pass
        secret = secrets.token_bytes(32)
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret.hex())
        os.replace(tmp, path)
        return secret

    def check_password(self, user: str, password: str) -> bool:
        expected = self._admins.get(user)
        return expected is not None and hmac.compare_digest(expected, hashlib.sha256(password.encode()).digest())

    def basic(self, header: str) -> str | None:
        """The user named by a valid `Authorization: Basic` header, else `None`."""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user if self.check_password(user, password) else None

    def _mac(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()[:40]

    def make_cookie(self, user: str, issued: float | None = None) -> str:
        """A signed session cookie value for `user`, issued now (or at time `issued`)."""
        payload = f"{user}:{int(time.time() if issued is None else issued):X}"
        return base64.urlsafe_b64encode(f"{payload}:{self._mac(payload)}".encode()).decode().rstrip("=")

    def cookie_user(self, value: str) -> tuple[str, bool] | None:
        """The user of a valid, unexpired session cookie and whether the cookie is due for
        renewal (older than `REFRESH_AFTER`), else `None`."""
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            payload, _, mac = raw.rpartition(":")
            user, _, stamp = payload.rpartition(":")
            if not (0 < len(stamp) <= 16 and all(c in "0123456789ABCDEF" for c in stamp)):
                return None
            age = time.time() - int(stamp, 16)
            # Neither past its lifetime nor stamped in the future (beyond clock skew).
            fresh = -COOKIE_SKEW <= age < SESSION_TIMEOUT
        except (ValueError, UnicodeDecodeError):
            return None
        if fresh and user in self._admins and hmac.compare_digest(mac, self._mac(payload)):
            return user, age > REFRESH_AFTER
        return None


def cookie_options(now: float | None = None) -> dict[str, Any]:
    """The attributes of a new `AuthSession` cookie (for aiohttp's `set_cookie`): both
    `Max-Age` and `Expires`, as CouchDB sends (some cookie jars read only `Expires`)."""
    expires = (time.time() if now is None else now) + SESSION_TIMEOUT
    return {"max_age": SESSION_TIMEOUT, "expires": formatdate(expires, usegmt=True), "path": "/",
            "httponly": True, "samesite": "Lax"}


class LoginThrottle:
    """Failed logins per client address: after `per_minute` failures within a minute, the
    address gets `429 too_many_requests` (with `Retry-After`) until the oldest of them
    is a minute old; its password is not even checked meanwhile."""

    WINDOW = 60.0
    MAX_ADDRESSES = 10_000
    """Addresses remembered at most (the oldest are forgotten first)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._failures: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()

    def _recent(self, peer: str) -> collections.deque[float] | None:
        times = self._failures.get(peer)
        if times is None:
            return None
        cutoff = time.monotonic() - self.WINDOW
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self._failures[peer]
            return None
        return times

    def retry_after(self, peer: str) -> int:
        times = self._recent(peer)
        if not times:
            return 0
        return max(1, math.ceil(times[0] + self.WINDOW - time.monotonic()))

    def check(self, peer: str) -> None:
        """Raise 429 while `peer` has used up its failed attempts."""
        if self.per_minute <= 0:
            return
        times = self._recent(peer)
        if times is not None and len(times) >= self.per_minute:
            raise CouchError(429, "too_many_requests",
                             f"Too many failed logins from this address; retry in {self.retry_after(peer)} s.")

    def failed(self, peer: str) -> None:
        times = self._failures.get(peer)
        if times is None:
            times = self._failures[peer] = collections.deque()
            if len(self._failures) > self.MAX_ADDRESSES:
                self._failures.popitem(last=False)
        times.append(time.monotonic())

    def succeeded(self, peer: str) -> None:
        self._failures.pop(peer, None)
