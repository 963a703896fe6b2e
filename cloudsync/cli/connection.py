"""Where a command connects: `--url` or `COUCHDB_URL`, with credentials from the environment,
so that no secret needs to appear in the command line (visible to every user of the machine
in `ps`)."""

from __future__ import annotations

import argparse
import os
from urllib.parse import unquote, urlsplit

from ..auth import Auth
from ..client import DEFAULT_URL, Client
from ..database import Database
from ..iam import DEFAULT_TOKEN_URL, IAMAuth
from .arguments import UsageError

__all__ = ["IAM_KEY_VARIABLES", "add_connection_arguments", "connect", "database_url", "display_url",
           "open_database", "server_url"]

IAM_KEY_VARIABLES = ("CLOUDANT_APIKEY", "IAM_API_KEY")
"""Where an IBM Cloud IAM API key is looked for, in this order."""

ENVIRONMENT_HELP = (
    "Connection: --url, else $COUCHDB_URL, else http://127.0.0.1:5984. Credentials: "
    "$COUCHDB_USER and $COUCHDB_PASSWORD, or user:password@ in $COUCHDB_URL; else an IBM Cloud "
    "IAM API key in $CLOUDANT_APIKEY (or $IAM_API_KEY), exchanged at $IAM_TOKEN_URL "
    f"(default {DEFAULT_TOKEN_URL})."
)


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `--url` and `--timeout`, and say where credentials come from."""
    parser.add_argument("--url", metavar="URL",
                        help="the server (default: $COUCHDB_URL, else http://127.0.0.1:5984)")
    parser.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                        help="seconds to wait for each answer (default 60)")
    parser.epilog = ENVIRONMENT_HELP


def connect(args: argparse.Namespace, url: str | None = None) -> Client:
    """A [Client][cloudsync.Client] for the command's server (or `url`) and credentials:
    user:password@ in the URL, else `COUCHDB_USER` and `COUCHDB_PASSWORD`, else an IAM API
    key (`CLOUDANT_APIKEY` or `IAM_API_KEY`), else none.

    Raises:
        UsageError: The URL is not an http(s) URL, or only half the credentials are set.
    """
    url = url if url is not None else server_url(args)
    try:
        in_url = urlsplit(url).username is not None
    except ValueError:  # a port that is not a number
        in_url = False
    auth = None if in_url else environment_auth()
    try:
        return Client(url, auth=auth, timeout=(min(10.0, args.timeout), args.timeout))
    except ValueError as exc:
        raise UsageError(f"{exc}, not {display_url(url)!r}") from None


def environment_auth() -> Auth | tuple[str, str] | None:
    """The credentials the environment holds: a user and password, else an IAM key.

    Raises:
        UsageError: Only one of `COUCHDB_USER` and `COUCHDB_PASSWORD` is set.
    """
    user, password = os.environ.get("COUCHDB_USER"), os.environ.get("COUCHDB_PASSWORD")
    if (user is None) != (password is None):
        raise UsageError("set both COUCHDB_USER and COUCHDB_PASSWORD, or neither")
    if user is not None and password is not None:
        return (user, password)
    key = next((os.environ[name] for name in IAM_KEY_VARIABLES if os.environ.get(name)), None)
    if key is None:
        return None
    return IAMAuth(key, token_url=os.environ.get("IAM_TOKEN_URL") or DEFAULT_TOKEN_URL)


def open_database(client: Client, name: str) -> Database:
    """`client.database(name)`, with an illegal name as a usage error.

    Raises:
        UsageError: `name` is not a legal database name.
    """
    try:
        return client.database(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def database_url(text: str, args: argparse.Namespace) -> tuple[str, str]:
    """`(server URL, database name)` of a command's database argument: a database's URL
    (`https://user:password@host/db`; its last path segment, %-decoded, is the name), or a
    name on the command's server (`--url`)."""
    if not text.startswith(("http://", "https://")):
        return server_url(args), text
    if "/" not in text.rstrip("/").partition("://")[2]:  # no path: a server, not a database
        raise UsageError(f"{display_url(text)} names no database (http://host:port/DB)")
    base, _, name = text.rstrip("/").rpartition("/")
    return base, unquote(name)


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
