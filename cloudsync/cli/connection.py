"""Where a command connects: `--url` or `COUCHDB_URL`, with credentials from the environment,
so that no secret needs to appear in the command line (visible to every user of the machine
in `ps`)."""

from __future__ import annotations

import argparse
import os
from urllib.parse import urlsplit

from ..client import DEFAULT_URL, Client
from .arguments import UsageError

__all__ = ["add_connection_arguments", "connect", "display_url", "server_url"]

ENVIRONMENT_HELP = (
    "Connection: --url, else $COUCHDB_URL, else http://127.0.0.1:5984. Credentials: "
    "$COUCHDB_USER and $COUCHDB_PASSWORD, or user:password@ in $COUCHDB_URL."
)


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `--url` and `--timeout`, and say where credentials come from."""
    parser.add_argument("--url", metavar="URL",
                        help="the server (default: $COUCHDB_URL, else http://127.0.0.1:5984)")
    parser.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                        help="seconds to wait for each answer (default 60)")
    parser.epilog = ENVIRONMENT_HELP


def connect(args: argparse.Namespace) -> Client:
    """A [Client][cloudsync.Client] for the command's server and credentials.

    Raises:
        UsageError: The URL is not an http(s) URL, or only half the credentials are set.
    """
    url = server_url(args)
    user, password = os.environ.get("COUCHDB_USER"), os.environ.get("COUCHDB_PASSWORD")
    auth = None
    if (user is None) != (password is None):
        raise UsageError("set both COUCHDB_USER and COUCHDB_PASSWORD, or neither")
    try:
        in_url = urlsplit(url).username is not None
    except ValueError:  # a port that is not a number
        in_url = False
    if user is not None and password is not None and not in_url:
        auth = (user, password)
    try:
        return Client(url, auth=auth, timeout=(min(10.0, args.timeout), args.timeout))
    except ValueError as exc:
        raise UsageError(f"{exc}, not {display_url(url)!r}") from None


def server_url(args: argparse.Namespace) -> str:
    """The URL the command connects to (with any credentials it carries)."""
    return getattr(args, "url", None) or os.environ.get("COUCHDB_URL") or DEFAULT_URL


def display_url(url: str) -> str:
    """`url` without its credentials, fit to print."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        return parts._replace(netloc=netloc).geturl()
    except ValueError:
        return "<an unparsable URL>"
