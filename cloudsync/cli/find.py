"""`cloudsync find DB SELECTOR`: the documents matching a Mango selector, as JSON lines."""

from __future__ import annotations

import argparse
from typing import Any

from .arguments import UsageError, json_argument
from .connection import add_connection_arguments, connect, open_database
from .jsonlines import write_line

__all__ = ["add_parser", "run", "sort_argument"]


def sort_argument(text: str) -> Any:
    """`FIELD`, `FIELD:asc` or `FIELD:desc` as a Mango sort entry (`FIELD` or `{FIELD: "desc"}`)."""
    field, _, direction = text.rpartition(":") if text.endswith((":asc", ":desc")) else (text, "", "")
    if not field:
        raise argparse.ArgumentTypeError(f"no field to sort by in {text!r}")
    return {field: direction} if direction else field


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("find", help="print the documents matching a Mango selector as JSON lines",
                                 description="Print each document of DB that matches SELECTOR as one "
                                 "JSON line, following the server's pages.")
    parser.add_argument("db", metavar="DB", help="the database")
    parser.add_argument("selector", metavar="SELECTOR", help='a Mango selector, e.g. \'{"type": "order"}\'')
    parser.add_argument("--fields", metavar="A,B,...", help="print only these fields of each document")
    parser.add_argument("--sort", action="append", type=sort_argument, metavar="FIELD[:desc]",
                        help="sort by FIELD (repeatable; the server may need an index on the fields)")
    parser.add_argument("--limit", type=int, metavar="N", help="print at most N documents")
    add_connection_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    selector = json_argument(args.selector, "SELECTOR")
    if not isinstance(selector, dict):
        raise UsageError(f"SELECTOR must be a JSON object, not {args.selector}")
    if args.limit is not None and args.limit < 0:
        raise UsageError("--limit must be 0 or more")
    fields = [f.strip() for f in args.fields.split(",") if f.strip()] if args.fields else None
    with connect(args) as client:
        for doc in open_database(client, args.db).query(selector, fields=fields, sort=args.sort, limit=args.limit):
            write_line(doc)
    return 0
