"""The `cloudsync` command line: a thin front that hands each subcommand to its module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `cloudsync` console script."""
    parser = argparse.ArgumentParser(prog="cloudsync", description="cloudsync command line tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", help="run the embedded CouchDB-compatible server (needs the 'server' extra)",
                   add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "serve":
        try:
            from cloudsync.server.__main__ import main as serve_main
        except ImportError as exc:  # aiohttp missing: the server extra is not installed
            parser.exit(2, f"cloudsync serve needs the server extra (pip install 'cloudsync[server]'): {exc}\n")
        return serve_main(rest, prog="cloudsync serve")
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
