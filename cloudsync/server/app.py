"""The aiohttp application: the gate before authentication (Host, Origin, CORS),
authentication, CouchDB-style error answers, startup and shutdown.

aiohttp serves plain requests, chunked streaming and WebSocket upgrades on one port
from one event loop; `handlers.Handlers.dispatch` routes every request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler

from .. import __version__
from . import changes, limits
from .auth import COOKIE, Auth, LoginThrottle, cookie_options
from .errors import CouchError, bad_request
from .handlers import COUCHDB_VERSION, Handlers
from .http import json_response, too_large
from .jwt import JWTVerifier
from .state import ServerConfig, ServerState
from .storage import Storage

__all__ = ["ServerConfig", "make_app", "run"]

log = logging.getLogger("cloudsync.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CORS_HEADERS = "accept, authorization, content-type, origin, referer, if-match, last-event-id, x-requested-with"
"""Headers a CORS preflight may ask for when the browser names none we know."""
CORS_EXPOSE = "cache-control, content-type, etag, server, x-couch-request-id, x-couchdb-body-time"


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts local connections."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- application ---------------------------------------------------------------------


def _host_name(host: str) -> str:
    """The name in a `Host` header, without port or IPv6 brackets, lowercased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


class _Gate:
    """Who may talk to the server before authentication: `Host` names (DNS rebinding),
    `Origin` of WebSocket/EventSource feeds (any web page can open those), and CORS."""

    def __init__(self, config: ServerConfig, auth: Auth) -> None:
        self.auth = auth
        self.hosts = {_host_name(h) for h in config.allow_hosts}
        self.any_host = "*" in config.allow_hosts
        bound = _host_name(config.host)
        self.hosts.add(bound)
        # Bound to every address (with --insecure-no-auth): clients use any of the
        # machine's addresses. An IP literal cannot be rebound by DNS, a name can.
        self.ip_literals = bound in ("0.0.0.0", "::", "")
        self.origins = {o.rstrip("/").lower() for o in config.allow_origins}
        self.any_origin = "*" in config.allow_origins

    def host_allowed(self, host: str | None) -> bool:
        if not host or self.any_host:
            return True
        name = _host_name(host)
        if name in self.hosts or name == "localhost" or name.endswith(".localhost"):
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False
        return address.is_loopback or self.ip_literals

    def origin_allowed(self, request: web.Request, origin: str) -> bool:
        origin = origin.rstrip("/").lower()
        if self.any_origin and origin != "null":
            return True
        if origin in self.origins:
            return True
        # Same origin: a page served from this very address.
        netloc = urlsplit(origin).netloc
        return bool(netloc) and netloc == (request.headers.get("Host") or "").lower()

    def check(self, request: web.Request) -> None:
        if not self.auth.enabled and not self.host_allowed(request.headers.get("Host")):
            raise CouchError(403, "forbidden",
                             f"Host {request.headers.get('Host')!r} is not allowed: without --admin the server "
                             "answers only loopback names (see --allow-host)")
        origin = request.headers.get("Origin")
        if origin is not None and _is_feed_stream(request) and not self.origin_allowed(request, origin):
            raise CouchError(403, "forbidden",
                             f"Origin {origin!r} may not open change feeds (see --allow-origin)")

    def preflight(self, request: web.Request) -> web.Response:
        """A CORS preflight: allowed origins get the methods and headers they asked for."""
        self.check_host_only(request)
        origin = request.headers.get("Origin")
        if origin is None or not (self.origins or self.any_origin) or not self.origin_allowed(request, origin):
            raise CouchError(403, "forbidden", "CORS is not enabled for this origin (see --allow-origin)")
        wanted = request.headers.get("Access-Control-Request-Headers")
        return web.Response(status=204, headers={
            "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, DELETE, COPY",
            "Access-Control-Allow-Headers": wanted or CORS_HEADERS,
            "Access-Control-Max-Age": "600",
        })

    def check_host_only(self, request: web.Request) -> None:
        if not self.auth.enabled and not self.host_allowed(request.headers.get("Host")):
            raise CouchError(403, "forbidden", "Host not allowed (see --allow-host)")

    def cors_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if origin is None or not (self.origins or self.any_origin) or not self.origin_allowed(request, origin):
            return
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSE
        response.headers["Vary"] = "Origin"


def _is_feed_stream(request: web.Request) -> bool:
    """A WebSocket upgrade or an EventSource feed (which browsers open from any page)."""
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return True
    return (request.query.get("feed") in ("eventsource", "websocket")
            or "text/event-stream" in request.headers.get("Accept", ""))


_PUBLIC = {("GET", ()), ("HEAD", ()), ("GET", ("_up",)), ("HEAD", ("_up",))}


def make_app(config: ServerConfig, storage: Storage | None = None) -> web.Application:
    """The aiohttp application for `config` (opens its storage unless given one)."""
    if storage is None:
        if config.data_dir is None:
            raise ValueError("data_dir is required unless memory=True")
        storage = Storage(config.data_dir, durable=not config.memory)
    jwt = None if config.jwt_secret is None else JWTVerifier(config.jwt_secret.encode(), config.jwt_roles_claim)
    auth = Auth(config.admins, None if config.memory else storage.data_dir, jwt)
    state = ServerState(config, storage, auth)
    handlers = Handlers(state)

    gate = _Gate(config, auth)

    @web.middleware
    async def couch_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
                return gate.preflight(request)
            gate.check(request)
            if auth.enabled:
                _authenticate(request, auth, state.throttle)
            return await handler(request)
        except Exception as exc:
            ws = request.get("ws")
            if isinstance(ws, web.WebSocketResponse) and ws.prepared:
                # After the upgrade the stream is WebSocket frames: answer with a close code.
                return await _close_ws(ws, exc, request)
            if isinstance(exc, CouchError):
                headers = {"WWW-Authenticate": 'Basic realm="cloudsync"'} if exc.status == 401 else {}
                if exc.status == 429:
                    headers["Retry-After"] = str(state.throttle.retry_after(request.remote or ""))
                return json_response(exc.as_json(), exc.status, headers or None)
            if isinstance(exc, web.HTTPException):
                if exc.status == 413:
                    return json_response(too_large().as_json(), 413)
                return json_response({"error": exc.reason.lower().replace(" ", "_"), "reason": exc.reason},
                                     exc.status)
            if isinstance(exc, ConnectionError):
                raise
            if isinstance(exc, RecursionError):
                return json_response(bad_request("input nested too deeply").as_json(), 400)
            log.exception("unexpected error in %s %s", request.method, request.path)
            return json_response({"error": "internal_server_error",
                                  "reason": "An unexpected error occurred; see the server log."}, 500)

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Couch-Request-ID"] = os.urandom(5).hex()
        response.headers["Server"] = f"cloudsync/{__version__} (CouchDB {COUCHDB_VERSION} API)"
        if request.get("renew_cookie") and COOKIE not in response.cookies:
            # As CouchDB: a session cookie in use is re-issued once 10% of its lifetime has
            # passed. Headers are already made from the cookies here: the header is added too.
            response.set_cookie(COOKIE, auth.make_cookie(request["user"]), **cookie_options())
            response.headers.add("Set-Cookie", response.cookies[COOKIE].OutputString())
        gate.cors_headers(request, response)

    async def on_startup(app: web.Application) -> None:
        state.watchdog.start()

    async def on_shutdown(app: web.Application) -> None:
        # End open feeds promptly: they see `closing` as soon as they are woken; running
        # queries stop at their next budget check (or SQLite progress callback).
        state.closing = True
        limits.shutting_down.set()
        for name in storage.names():
            db = storage.get(name)
            if db is not None:
                db.wake()
        storage.db_updates.wake()

    async def on_cleanup(app: web.Application) -> None:
        state.watchdog.stop()
        state.query_executor.shutdown(wait=True, cancel_futures=True)
        storage.close()

    app = web.Application(middlewares=[couch_middleware], client_max_size=config.max_body)
    app["state"] = state
    app.on_response_prepare.append(add_headers)
    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    app.router.add_route("*", r"/{tail:[\s\S]*}", handlers.dispatch)  # ids may hold line breaks
    return app


async def _close_ws(ws: web.WebSocketResponse, exc: Exception, request: web.Request) -> web.WebSocketResponse:
    """End an upgraded request that failed: 1008 (policy violation) for a bad input, 1011
    (internal error) otherwise, with the reason as the close message (at most 123 bytes)."""
    if isinstance(exc, CouchError) and exc.status < 500:
        code, reason = 1008, exc.reason
    elif isinstance(exc, (ConnectionError, asyncio.CancelledError)):
        return ws
    else:
        log.error("unexpected error in a websocket feed %s", request.path, exc_info=exc)
        code, reason = 1011, "internal error; see the server log"
    if not ws.closed:
        try:
            await ws.close(code=code, message=reason.encode()[:123])
        except Exception:  # the client may be gone already
            changes.reset_connection(request)
    return ws


def _authenticate(request: web.Request, auth: Auth, throttle: LoginThrottle) -> None:
    header = request.headers.get("Authorization")
    scheme, _, token = (header or "").partition(" ")
    if auth.jwt is not None and scheme.lower() == "bearer":
        # No login throttle: a token is not guessed like a password.
        request["user"], request["roles"] = auth.jwt.verify(token, time.time())
        request["auth_via"] = "jwt"
        return
    if header is not None:
        peer = request.remote or ""
        throttle.check(peer)
        user = auth.basic(header)
        if user is None:
            throttle.failed(peer)
            raise CouchError(401, "unauthorized", "Name or password is incorrect.")
        request["user"], request["auth_via"] = user, "default"
        return
    cookie = request.cookies.get(COOKIE)
    if cookie:
        session = auth.cookie_user(cookie)
        if session is not None:
            request["user"], request["auth_via"] = session[0], "cookie"
            request["renew_cookie"] = session[1]
            return
    path = request.raw_path.split("?", 1)[0].strip("/")
    if path == "_session" or (request.method, tuple(p for p in path.split("/") if p)) in _PUBLIC:
        return
    raise CouchError(401, "unauthorized", "You are not authorized to access this db.")


class _CouchRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering requests it cannot parse (a request line or
    header past 8190 bytes, bad framing) in CouchDB's JSON error shape, logged at debug
    level rather than as an error with a traceback each."""

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        self.logger.debug("malformed request from %s: %s", request.remote, exc)
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        if isinstance(exc, LineTooLong):
            reason = "The request line or a header is longer than 8190 bytes"
        else:
            reason = f"Malformed HTTP request ({type(exc).__name__ if exc else status})"
        resp = json_response({"error": "bad_request" if status == 400 else "request_error", "reason": reason},
                             status)
        resp.force_close()
        return resp


class _CouchServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _CouchRequestHandler(self, loop=self._loop, **self._kwargs)


def _quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """At the open-files limit asyncio retries accept() every 0.1-1 s and reports each
    failure with a traceback: log the condition once (then at most every 10 minutes),
    keep serving the connections already open."""
    previous = loop.get_exception_handler()
    last = [0.0]
    suppressed = [0]

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == "socket.accept() out of system resource":
            now = time.monotonic()
            if not last[0] or now - last[0] > 600:
                exc = context.get("exception")
                log.error("cannot accept new connections: %s (open-files limit: ulimit -n); serving the open "
                          "ones, retrying every second (%d similar failures not logged)", exc, suppressed[0])
                last[0] = now
                suppressed[0] = 0
            else:
                suppressed[0] += 1
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


async def run(config: ServerConfig, *, ready: Callable[[str, int], None] | None = None,
              stop: asyncio.Event | None = None) -> None:
    """Serve until `stop` is set; calls `ready(host, port)` once listening."""
    if not config.admins and not config.jwt_secret and not is_loopback(config.host) and not config.insecure_no_auth:
        raise SystemExit(
            f"refusing to serve {config.host} without authentication: pass --admin USER:PASS "
            "(or set CLOUDSYNC_ADMIN), or --insecure-no-auth"
        )
    temp_dir = None
    if config.memory and config.data_dir is None:
        temp_dir = tempfile.mkdtemp(prefix="cloudsync-memory-")
        config.data_dir = temp_dir
    if not config.admins and not config.jwt_secret:
        log.warning(
            "running WITHOUT AUTHENTICATION: anyone who can connect to %s:%s can read and write every "
            "database. Pass --admin USER:PASS (or set CLOUDSYNC_ADMIN) to require a login.",
            config.host, config.port)
    limits.shutting_down.clear()
    _quiet_accept_errors(asyncio.get_running_loop())
    try:
        app = make_app(config)
        # keepalive_timeout also closes a connection that sends no complete request head
        # within that time of opening (aiohttp arms it at connection_made).
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=2.0,
                               keepalive_timeout=config.idle_timeout or 3600.0)
        await runner.setup()
        assert runner.server is not None
        runner.server.__class__ = _CouchServer
        try:
            site = web.TCPSite(runner, config.host, config.port, backlog=2048)
            await site.start()
            addresses = runner.addresses  # (host, port, ...) of each listening socket
            port = addresses[0][1] if addresses else config.port
            if ready is not None:
                ready(config.host, port)
            await (stop or asyncio.Event()).wait()
        finally:
            # Queries running on threads stop at their next budget check, so the
            # process exits within seconds of SIGTERM whatever they were doing.
            limits.shutting_down.set()
            await runner.cleanup()
    finally:
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)

