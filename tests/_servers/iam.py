"""A local stand-in for IBM Cloud IAM's token endpoint (standard library only).

It exchanges API keys for HS256 JWTs signed with the secret the embedded server was
started with (`--jwt-secret`), so a token it hands out is accepted by that server until
it expires. It answers as IAM does (`access_token`, `expires_in`, `expiration`,
`token_type`), counts exchanges, and can be told to fail::

    with IAMEndpoint(secret, users={"key-1": ("alice", ["staff"])}, lifetime=3) as iam:
        auth = cloudsync.IAMAuth("key-1", token_url=iam.url)
        iam.fail_next(503)           # the next exchange answers 503
        iam.mode = "not-json"        # every exchange answers HTML until mode = None
        iam.forge_next()             # the next token is signed with a wrong secret

Listens on 127.0.0.1 only; `close()` stops its thread.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GRANT_TYPE = "urn:ibm:params:oauth:grant-type:apikey"
ROLES_CLAIM = "_couchdb.roles"

MODES = ("400", "401", "429", "500", "503", "not-json", "no-token", "no-expiry", "echo-key", "stall")
"""How an exchange may fail: an error status (400/401 with IAM's error body), a body that is
not JSON, JSON without `access_token` or `expires_in`, an error body echoing the key, or
an answer that never comes (until `close()`)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def sign_hs256(claims: Mapping[str, Any], secret: str, header: Mapping[str, Any] | None = None) -> str:
    """A JWT of `claims` signed with HS256 and `secret` (`header` replaces the usual one)."""
    head = _b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    mac = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(mac)}"


def token_for(user: str, roles: Sequence[str], secret: str, lifetime: float = 60.0,
              now: float | None = None, **claims: Any) -> str:
    """A token for `user` with `roles`, expiring `lifetime` seconds from `now`."""
    issued = time.time() if now is None else now
    return sign_hs256({"sub": user, ROLES_CLAIM: list(roles), "iat": int(issued),
                       "exp": issued + lifetime, **claims}, secret)


class IAMEndpoint:
    """The token endpoint: `url`, `exchanges` (tokens handed out), `requests` (every POST),
    `last_form`, `last_headers`, `last_token`; `lifetime`, `mode`, `fail_next()`, `forge_next()`."""

    def __init__(self, secret: str, users: Mapping[str, tuple[str, Sequence[str]]], *, lifetime: float = 60.0) -> None:
        self.secret = secret
        self.users = dict(users)
        self.lifetime = lifetime
        self.mode: str | None = None
        self.exchanges = 0
        self.requests = 0
        self.last_form: dict[str, str] = {}
        self.last_headers: dict[str, str] = {}
        self.last_token: str | None = None
        self._next: list[str] = []
        self._forge = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/identity/token"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="iam-endpoint", daemon=True)
        self._thread.start()

    def fail_next(self, mode: str, times: int = 1) -> None:
        """The next `times` exchanges fail as `mode` (one of `MODES`)."""
        assert mode in MODES
        with self._lock:
            self._next.extend([mode] * times)

    def forge_next(self, times: int = 1) -> None:
        """The next `times` tokens are signed with a wrong secret (the server refuses them)."""
        with self._lock:
            self._forge += times

    def wait_for_exchanges(self, n: int, timeout: float) -> bool:
        """Wait until at least `n` tokens were handed out, up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.exchanges >= n:
                return True
            self._closing.wait(0.02)
        return self.exchanges >= n

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> IAMEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _answer(self, form: Mapping[str, str]) -> tuple[int, str, bytes]:
        """(status, content type, body) for one exchange."""
        with self._lock:
            self.requests += 1
            mode = self._next.pop(0) if self._next else self.mode
            forge = self._forge > 0
            self._forge -= forge
        key = form.get("apikey", "")
        if mode in ("400", "401") or (mode is None and key not in self.users):
            body = {"errorCode": "BXNIM0415E", "errorMessage": "Provided API key could not be found.",
                    "context": {"requestId": "test"}}
            return int(mode or 400), "application/json", json.dumps(body).encode()
        if mode == "echo-key":
            return 400, "application/json", json.dumps({"errorMessage": f"bad key {key}"}).encode()
        if mode in ("429", "500", "503"):
            return int(mode), "application/json", b'{"errorMessage": "try later"}'
        if mode == "not-json":
            return 200, "text/html", b"<html>maintenance</html>"
        if mode == "stall":
            self._closing.wait(30)
            return 503, "text/plain", b""
        if form.get("grant_type") != GRANT_TYPE:
            return 400, "application/json", b'{"errorCode": "BXNIM0308E", "errorMessage": "bad grant type"}'
        user, roles = self.users[key]
        now = time.time()
        token = token_for(user, roles, "not-" + self.secret if forge else self.secret, self.lifetime, now)
        answer: dict[str, Any] = {"access_token": token, "refresh_token": "not_supported", "token_type": "Bearer",
                                  "expires_in": self.lifetime, "expiration": int(now + self.lifetime)}
        if mode == "no-token":
            del answer["access_token"]
        if mode == "no-expiry":
            del answer["expires_in"]
        with self._lock:
            self.exchanges += mode is None
            self.last_token = token
        return 200, "application/json", json.dumps(answer).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                endpoint.last_form = form
                endpoint.last_headers = dict(self.headers.items())
                status, ctype, body = endpoint._answer(form)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
