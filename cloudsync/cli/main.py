"""The `cloudsync` command: parse the command line, run one command, and turn its errors into
one line on stderr and an exit status (no traceback)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from .. import __version__
from ..errors import (
    CloudSyncError,
    Forbidden,
    RequestTimeout,
    TLSError,
    TokenError,
    TransportError,
    Unauthorized,
)
from . import backup, find, load, replicate, restore, serve, watch
from .arguments import UsageError
from .connection import display_url, server_url
from .status import EXIT_BROKEN_PIPE, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE

__all__ = ["build_parser", "main"]

COMMANDS = (serve, watch, find, load, backup, restore, replicate)
"""Each command's module: `add_parser(subparsers)` adds its parser, whose `run` default runs it."""

DISTRIBUTION = "cloudsync-couchdb"
"""The name to install cloudsync by (`pip install cloudsync-couchdb`); the import name is
`cloudsync`. The project called `cloudsync` on the package index is an unrelated one."""


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: what is wrong and where help is, not the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> Parser:
    """The whole command line: every command's parser under one `cloudsync` parser."""
    parser = Parser(prog="cloudsync", description="cloudsync: CouchDB-style databases and their changes "
                    "from the command line.")
    parser.add_argument("--version", action="version", version=f"cloudsync {__version__} ({DISTRIBUTION})")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(commands)
    for command_parser in commands.choices.values():
        command_parser.set_defaults(parser=command_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `cloudsync` command.

    Args:
        argv: The arguments after the program name (default: `sys.argv[1:]`).

    Returns:
        The exit status: 0 done, 1 failed, 2 a usage error, 130 interrupted.
    """
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if getattr(args, "passthrough", False):  # serve parses its own arguments
        args.argv = rest
    elif rest:
        args.parser.error(f"unrecognized arguments: {' '.join(rest)}")
    prog = f"cloudsync {args.command}"
    try:
        return int(args.run(args))
    except UsageError as exc:
        return fail(prog, str(exc), EXIT_USAGE)
    except CloudSyncError as exc:
        return fail(prog, describe(exc, display_url(server_url(args))))
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Whoever read stdout has gone: nothing to say. Point stdout at /dev/null so the
        # interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def describe(exc: CloudSyncError, url: str) -> str:
    """One line saying what went wrong, and what to check where that is clear."""
    if isinstance(exc, Unauthorized):
        return (f"{exc} (check the credentials: COUCHDB_USER and COUCHDB_PASSWORD, "
                "user:password@ in COUCHDB_URL, or the IAM API key in CLOUDANT_APIKEY)")
    if isinstance(exc, Forbidden):
        return f"{exc} (the credentials do not allow this)"
    if isinstance(exc, TokenError):  # before TransportError: the token endpoint failed, not the server
        return f"{exc} (check the IAM API key in CLOUDANT_APIKEY or IAM_API_KEY, and IAM_TOKEN_URL)"
    if isinstance(exc, TLSError):
        return f"TLS failed with {url}: {exc}"
    if isinstance(exc, RequestTimeout):
        return f"{url} did not answer in time: {exc}"
    if isinstance(exc, TransportError):
        return f"cannot reach {url}: {socket_error(exc) or exc}"
    return str(exc)


def socket_error(exc: BaseException) -> str | None:
    """The operating system's words for a failed connection (`[Errno 111] Connection
    refused`), found at the root of the exception's chain; `None` when there is none."""
    found, seen = None, set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno is not None:  # the socket's, not a library's
            found = cause
        cause = cause.__cause__ or cause.__context__
    return str(found) if found is not None else None


def fail(prog: str, message: str, status: int = EXIT_FAILED) -> int:
    """Write `prog: error: message` on stderr; return `status`."""
    print(f"{prog}: error: {' '.join(message.splitlines())}", file=sys.stderr)
    return status
