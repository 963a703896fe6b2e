"""`python -m cloudsync.server [options]`: the same as `cloudsync serve [options]`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import signal
import sys
from collections.abc import Sequence

from .app import ServerConfig, run
from .auth import parse_admin

__all__ = ["build_parser", "main"]


def build_parser(prog: str = "cloudsync serve") -> argparse.ArgumentParser:
    """The `serve` command line."""
    p = argparse.ArgumentParser(prog=prog, description="Run the embedded CouchDB-compatible cloudsync server.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5984, help="port to bind; 0 picks a free one (default 5984)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--data-dir", help="directory for the database files (default ./cloudsync-data)")
    where.add_argument("--memory", action="store_true", help="keep data only while the server runs")
    p.add_argument("--admin", action="append", default=[], metavar="USER:PASS",
                   help="admin user (repeatable; also CLOUDSYNC_ADMIN=USER:PASS); enables authentication")
    p.add_argument("--jwt-secret", metavar="SECRET",
                   help="accept 'Authorization: Bearer' JWTs signed with SECRET (HS256), as CouchDB's JWT "
                        "authentication; also CLOUDSYNC_JWT_SECRET; enables authentication")
    p.add_argument("--jwt-roles-claim", default="_couchdb.roles", metavar="NAME",
                   help="the JWT claim holding the user's roles (default _couchdb.roles)")
    p.add_argument("--insecure-no-auth", action="store_true",
                   help="allow serving a non-loopback address without any user configured")
    p.add_argument("--max-body", type=int, default=64 * 1024 * 1024, metavar="BYTES",
                   help="largest accepted request body, inline base64 attachments included (default 64 MiB)")
    p.add_argument("--max-attachment-size", type=int, default=64 * 1024 * 1024, metavar="BYTES",
                   help="largest attachment uploaded on its own (PUT /db/doc/name), spooled to disk "
                        "(default 64 MiB)")
    p.add_argument("--max-json-depth", type=int, default=64, metavar="N",
                   help="deepest accepted JSON nesting (default 64)")
    p.add_argument("--send-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="disconnect a feed whose client accepts no data for this long (default 30)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="without --admin, also answer requests whose Host is NAME (repeatable; '*': any); "
                        "loopback names are always allowed")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="let web pages from ORIGIN (e.g. http://localhost:3000; '*': any) open change feeds, "
                        "and answer them with CORS headers (repeatable)")
    p.add_argument("--query-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="time budget of one query evaluation (_find, _all_docs keys, _bulk_get, a selector "
                        "filter's batch); 0 disables (default 10)")
    p.add_argument("--idle-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="close a connection with no complete request for this long, or a request body that "
                        "stops arriving; 0 disables (default 30)")
    p.add_argument("--max-session-body", type=int, default=16 * 1024, metavar="BYTES",
                   help="largest body of POST /_session, which needs no credentials (default 16 KiB)")
    p.add_argument("--max-login-failures", type=int, default=10, metavar="N",
                   help="failed logins per client address per minute before 429 answers; 0 disables "
                        "(default 10)")
    p.add_argument("--parent-pid", type=int, metavar="PID",
                   help="stop, as on SIGTERM, once process PID has exited (a test harness passes its "
                        "own, so a harness killed with -9 leaves no server behind)")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"],
                   help="log verbosity on stderr (default warning)")
    return p


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """A `ServerConfig` from parsed arguments and the environment."""
    admins = {}
    specs = list(args.admin)
    if not specs and os.environ.get("CLOUDSYNC_ADMIN"):
        specs.append(os.environ["CLOUDSYNC_ADMIN"])
    for spec in specs:
        user, password = parse_admin(spec)
        admins[user] = password
    return ServerConfig(
        host=args.host, port=args.port,
        data_dir=None if args.memory else (args.data_dir or "cloudsync-data"),
        memory=args.memory, admins=admins, insecure_no_auth=args.insecure_no_auth,
        max_body=args.max_body, max_attachment_size=args.max_attachment_size, max_json_depth=args.max_json_depth, send_timeout=args.send_timeout,
        allow_hosts=list(args.allow_host), allow_origins=list(args.allow_origin),
        query_timeout=args.query_timeout, idle_timeout=args.idle_timeout,
        max_session_body=args.max_session_body, max_login_failures=args.max_login_failures,
        jwt_secret=args.jwt_secret or os.environ.get("CLOUDSYNC_JWT_SECRET") or None,
        jwt_roles_claim=args.jwt_roles_claim,
    )


def raise_open_files_limit() -> None:
    """Raise this process's soft limit on open files to the hard limit: every feed
    subscriber holds a socket, and the usual soft limit of 1024 caps a server near 1,000."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        with contextlib.suppress(ValueError, OSError):  # e.g. an infinite hard limit refused
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def process_alive(pid: int, parent: int) -> bool:
    """Whether process `pid` still runs. When it is this process's parent, its death shows
    as a new parent (immune to the pid being reused); otherwise a signal-0 probe, with an
    exited process nobody has reaped yet (a zombie) counted as gone."""
    if pid == parent:
        return os.getppid() == pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # no /proc here: the probe's answer stands
        return True


async def stop_when_gone(pid: int, stop: asyncio.Event, interval: float = 0.5) -> None:
    """Set `stop` once process `pid` has exited."""
    parent = os.getppid()
    while not stop.is_set():
        if not process_alive(pid, parent):
            logging.getLogger(__name__).warning("process %d has exited: stopping", pid)
            stop.set()
            return
        await asyncio.sleep(interval)


def main(argv: Sequence[str] | None = None, prog: str = "python -m cloudsync.server") -> int:
    """Parse `argv`, serve until SIGTERM/SIGINT, return the exit status."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    if args.parent_pid is not None and not (0 < args.parent_pid < 2**31 and args.parent_pid != os.getpid()):
        parser.error(f"--parent-pid: {args.parent_pid} is not the id of another process")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise_open_files_limit()
    # Query threads hand the interpreter back to the event loop every millisecond (not
    # every 5 ms): a request answered while a query runs waits for at most a few of these.
    sys.setswitchinterval(0.001)

    def ready(host: str, port: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        print(f"cloudsync server listening on http://{shown}:{port}", flush=True)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        watch = None if args.parent_pid is None else asyncio.create_task(stop_when_gone(args.parent_pid, stop))
        try:
            await run(config, ready=ready, stop=stop)
        finally:
            if watch is not None:
                watch.cancel()

    try:
        asyncio.run(serve())
    except OSError as exc:
        print(f"cloudsync server: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
