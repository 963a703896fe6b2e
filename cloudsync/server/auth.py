"""Admin users, basic auth and ``AuthSession`` cookies (CouchDB's ``/_session``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

__all__ = ["Auth", "parse_admin"]

COOKIE = "AuthSession"
SESSION_TIMEOUT = 600  # seconds, CouchDB's default; renewed on use


def parse_admin(value: str) -> tuple[str, str]:
    """``"user:password"`` -> ``("user", "password")``; ``ValueError`` if malformed."""
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError("admin credentials must look like USER:PASSWORD")
    return user, password


class Auth:
    """Checks credentials. With no users configured every request is an admin's."""

    def __init__(self, admins: dict[str, str], secret_dir: Path | None = None) -> None:
        self._admins = {u: hashlib.sha256(p.encode()).digest() for u, p in admins.items()}
        self._secret = self._load_secret(secret_dir)

    @property
    def enabled(self) -> bool:
        return bool(self._admins)

    @staticmethod
    def _load_secret(secret_dir: Path | None) -> bytes:
        # Persisted next to the data so sessions survive a restart, as in CouchDB.
        if secret_dir is None:
            return secrets.token_bytes(32)
        path = secret_dir / ".cloudsync-secret"
        try:
            return bytes.fromhex(path.read_text())
        except (OSError, ValueError):
            secret = secrets.token_bytes(32)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(secret.hex())
            os.replace(tmp, path)
            return secret

    def check_password(self, user: str, password: str) -> bool:
        expected = self._admins.get(user)
        return expected is not None and hmac.compare_digest(expected, hashlib.sha256(password.encode()).digest())

    def basic(self, header: str) -> str | None:
        """The user named by a valid ``Authorization: Basic`` header, else ``None``."""
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

    def make_cookie(self, user: str) -> str:
        """A signed session cookie value for ``user``."""
        payload = f"{user}:{int(time.time()):X}"
        return base64.urlsafe_b64encode(f"{payload}:{self._mac(payload)}".encode()).decode().rstrip("=")

    def cookie_user(self, value: str) -> str | None:
        """The user of a valid, unexpired session cookie, else ``None``."""
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            payload, _, mac = raw.rpartition(":")
            user, _, stamp = payload.rpartition(":")
            fresh = time.time() - int(stamp, 16) < SESSION_TIMEOUT
        except (ValueError, UnicodeDecodeError):
            return None
        if fresh and user in self._admins and hmac.compare_digest(mac, self._mac(payload)):
            return user
        return None
