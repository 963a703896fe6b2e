"""`cloudsync serve`: the embedded server (`cloudsync/server/__main__.py` parses its options).
The server is optional: without the `server` extra this says how to install it."""

from __future__ import annotations

import argparse
from typing import Any

from .arguments import UsageError

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    """Add `serve`: its options (and its `--help`) are the server's own."""
    parser = commands.add_parser("serve", add_help=False,
                                 help="run the embedded CouchDB-compatible server (needs the 'server' extra)")
    parser.set_defaults(run=run, passthrough=True)


def run(args: argparse.Namespace) -> int:
    try:
        from ..server.__main__ import main as serve_main
    except ImportError as exc:  # aiohttp (or RE2) missing: the server extra is not installed
        raise UsageError(f"the server extra is not installed: pip install 'cloudsync-couchdb[server]' ({exc})") from None
    return serve_main(args.argv, prog="cloudsync serve")
